#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports gae/gaeAsync and whiten/whitenAsync.
void export_rl(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
