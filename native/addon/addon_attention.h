#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports attentionForward, attentionBackward, rope, kvCacheAppend, attentionDecode and their Async forms.
void export_attention(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
