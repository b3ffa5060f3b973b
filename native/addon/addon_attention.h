#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports attentionForward/attentionForwardAsync.
void export_attention(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
