// PLACEHOLDER: replaced by the real bindings.
#include "addon_rl_loss.h"

namespace talaria::addon {
void export_rl_loss(Napi::Env, Napi::Object) {}
}  // namespace talaria::addon
