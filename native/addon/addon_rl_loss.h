#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports ppoLoss/ppoLossAsync and valueLoss/valueLossAsync.
void export_rl_loss(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
