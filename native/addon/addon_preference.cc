// PLACEHOLDER: replaced by the real bindings.
#include "addon_preference.h"

namespace talaria::addon {
void export_preference(Napi::Env, Napi::Object) {}
}  // namespace talaria::addon
