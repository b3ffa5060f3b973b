#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports dpoLoss/dpoLossAsync and rankingLoss/rankingLossAsync.
void export_preference(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
