// Addon entry point: registers the Tensor class, info(), the TalariaError hook and every kernel family.
#include <napi.h>

#include "../core/device.h"
#include "../core/simd.h"
#include "../core/thread_pool.h"
#include "addon_attention.h"
#include "addon_data.h"
#include "addon_layers.h"
#include "addon_logits.h"
#include "addon_matmul.h"
#include "addon_optimizer.h"
#include "addon_preference.h"
#include "addon_rewards.h"
#include "addon_rl.h"
#include "addon_rl_loss.h"
#include "addon_roofline.h"
#include "addon_sampling.h"
#include "addon_tensor.h"
#include "errors.h"

#ifndef TALARIA_VERSION
#define TALARIA_VERSION "0.0.0"
#endif

namespace talaria::addon {
namespace {

Napi::Value info(const Napi::CallbackInfo& call) {
  Napi::Env env = call.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Napi::Object::New(env);
    out.Set("version", TALARIA_VERSION);
    std::vector<CudaDeviceInfo> devices = cuda_devices();
    Napi::Array backends = Napi::Array::New(env);
    backends.Set(0u, "cpu");
    if (cuda_compiled() && !devices.empty()) backends.Set(1u, cuda_backend_name());
    out.Set("backends", backends);
    out.Set("cudaCompiled", cuda_compiled());
    out.Set("cudaBackend", cuda_compiled() ? Napi::Value(Napi::String::New(env, cuda_backend_name())) : env.Null());
    Napi::Array device_list = Napi::Array::New(env, devices.size());
    for (size_t i = 0; i < devices.size(); i++) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("index", devices[i].index);
      d.Set("name", devices[i].name);
      d.Set("totalMemory", static_cast<double>(devices[i].total_memory));
      d.Set("computeCapability", std::to_string(devices[i].compute_major) + "." + std::to_string(devices[i].compute_minor));
      device_list.Set(i, d);
    }
    out.Set("devices", device_list);
    out.Set("simd", simd_level_name(simd_level()));
    out.Set("threads", num_threads());
    return out;
  });
}

// lib/native.ts passes its TalariaError class so native errors are real TalariaError instances.
Napi::Value set_error_class(const Napi::CallbackInfo& call) {
  if (!call[0].IsFunction())
    throw make_error(call.Env(), ErrorCode::DType, "setErrorClass: expected a class, got " + describe(call[0]));
  addon_data(call.Env()).error_constructor = Napi::Persistent(call[0].As<Napi::Function>());
  return call.Env().Undefined();
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  Napi::Function tensor_class = AddonTensor::define_class(env);
  data->tensor_constructor = Napi::Persistent(tensor_class);
  exports.Set("Tensor", tensor_class);
  exports.Set("info", Napi::Function::New(env, info, "info"));
  exports.Set("setErrorClass", Napi::Function::New(env, set_error_class, "setErrorClass"));
  export_rl(env, exports);
  export_rl_loss(env, exports);
  export_rewards(env, exports);
  export_preference(env, exports);
  export_sampling(env, exports);
  export_logits(env, exports);
  export_matmul(env, exports);
  export_optimizer(env, exports);
  export_roofline(env, exports);
  export_attention(env, exports);
  export_layers(env, exports);
  return exports;
}

}  // namespace
}  // namespace talaria::addon

static Napi::Object talaria_init(Napi::Env env, Napi::Object exports) { return talaria::addon::init(env, exports); }
NODE_API_MODULE(talaria, talaria_init)
