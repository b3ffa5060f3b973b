// Per-environment state of the addon (one per Node.js thread/isolate that loads it).
#pragma once
#include <napi.h>

namespace talaria::addon {

struct AddonData {
  Napi::FunctionReference tensor_constructor;
  // The TalariaError class from lib/native.ts, registered at load; plain Error (with .code) until then.
  Napi::FunctionReference error_constructor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace talaria::addon
