#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports sample/sampleAsync.
void export_sampling(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
