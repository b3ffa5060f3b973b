#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports adamw and clipGradNorm and their *Async forms.
void export_optimizer(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
