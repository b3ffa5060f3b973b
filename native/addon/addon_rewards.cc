// PLACEHOLDER: replaced by the real bindings.
#include "addon_rewards.h"

namespace talaria::addon {
void export_rewards(Napi::Env, Napi::Object) {}
}  // namespace talaria::addon
