#pragma once
#include <napi.h>

namespace talaria::addon {
// Exports shapeRewards/shapeRewardsAsync and groupAdvantages/groupAdvantagesAsync.
void export_rewards(Napi::Env env, Napi::Object exports);
}  // namespace talaria::addon
