#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports matmul and matmulAsync.
void export_matmul(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
