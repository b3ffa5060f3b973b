// Bindings for the optimizer kernels (native/core/kernels/optimizer.h): adamw({params, grads, m, v, step,
// lr, beta1, beta2, eps, weightDecay}) updates params, m and v in place and returns them;
// clipGradNorm({grads, maxNorm?}) returns {grads, norm, scale}, scaling grads in place when clipping.
// Buffers are flat f32 [N] (typed arrays or 1-D Tensors) on one device. The in-place buffers must not
// overlap each other or the gradients. Bias corrections are computed here in f64 from `step`.
#include "addon_optimizer.h"

#include <cmath>

#include "../core/kernels/optimizer.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

// ---- adamw ---------------------------------------------------------------------------------------------

struct AdamwCall : KernelCall {
  TensorArg params, grads, m, v;
  AdamwArgs args{};

  void execute() override { adamw(params.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("params", output_value(env, params));
    out.Set("m", output_value(env, m));
    out.Set("v", output_value(env, v));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_adamw(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "adamw", "{params, grads, m, v, step, ...}",
                                    {"params", "grads", "m", "v", "step", "lr", "beta1", "beta2", "eps", "weightDecay"});
  auto call = std::make_unique<AdamwCall>();
  call->params = tensor_arg(input.Get("params"), "params", DType::F32);
  const int64_t n = call->params.tensor.numel();
  const Device device = call->params.tensor.device();
  call->grads = input_arg(input, "grads", DType::F32, n, device, "one per parameter");
  call->m = input_arg(input, "m", DType::F32, n, device, "one per parameter");
  call->v = input_arg(input, "v", DType::F32, n, device, "one per parameter");
  require_outputs_disjoint({{&call->params, "params"}, {&call->m, "m"}, {&call->v, "v"}}, {{&call->grads, "grads"}});
  for (const TensorArg* arg : {&call->params, &call->grads, &call->m, &call->v}) call->hold(*arg);

  if (input.Get("step").IsUndefined()) fail(ErrorCode::Range, "step: expected the step number (an integer >= 1), got undefined");
  const double step = number_option(input, "step", 1, 1, kMaxSafeInteger);
  if (std::floor(step) != step) fail(ErrorCode::Range, "step: expected an integer >= 1, got " + std::to_string(step));
  const double lr = number_option(input, "lr", 1e-3, 0, kFloatMax);
  const float beta1 = float_option(input, "beta1", 0.9f, 0, 1, true, false);
  const float beta2 = float_option(input, "beta2", 0.999f, 0, 1, true, false);
  const float eps = float_option(input, "eps", 1e-8f, 0, kFloatMax, false, true);
  const double wd = number_option(input, "weightDecay", 0.01, 0, kFloatMax);
  if (lr * wd > 1) fail(ErrorCode::Range, "weightDecay: expected lr * weightDecay <= 1 (the decay factor 1 - lr wd >= 0), got " +
                                              std::to_string(lr * wd));

  AdamwArgs& a = call->args;
  a.params = call->params.tensor.data_as<float>();
  a.grads = call->grads.tensor.data_as<const float>();
  a.m = call->m.tensor.data_as<float>();
  a.v = call->v.tensor.data_as<float>();
  a.n = n;
  a.beta1 = beta1, a.beta2 = beta2, a.eps = eps;
  a.decay = static_cast<float>(1.0 - lr * wd);
  // 1 - b^t in f64; b^t underflows to 0 for large t, which gives the asymptotic bc = 1.
  a.step_size = static_cast<float>(lr / (1.0 - std::pow(static_cast<double>(beta1), step)));
  a.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(beta2), step)));
  if (!std::isfinite(a.step_size) || !std::isfinite(a.inv_sqrt_bc2))
    fail(ErrorCode::Range, "lr: the bias-corrected step lr / (1 - beta1^step) = " + std::to_string(a.step_size) +
                               " does not fit in f32");
  return call;
}

// ---- clipGradNorm --------------------------------------------------------------------------------------

struct GradNormCall : KernelCall {
  TensorArg grads;
  double norm = 0.0;
  float scale = 1.0f;
  GradNormArgs args{};

  void execute() override { grad_norm(grads.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("grads", output_value(env, grads));
    out.Set("norm", norm);
    out.Set("scale", static_cast<double>(scale));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_clip_grad_norm(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "clipGradNorm", "{grads, maxNorm?}", {"grads", "maxNorm"});
  auto call = std::make_unique<GradNormCall>();
  call->grads = tensor_arg(input.Get("grads"), "grads", DType::F32);
  call->hold(call->grads);
  GradNormArgs& a = call->args;
  a.grads = call->grads.tensor.data_as<float>();
  a.n = call->grads.tensor.numel();
  a.max_norm = input.Get("maxNorm").IsUndefined() ? 0.0f : float_option(input, "maxNorm", 1.0f, 0, kFloatMax, false, true);
  a.norm = &call->norm;
  a.scale = &call->scale;
  return call;
}

}  // namespace

void export_optimizer(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "adamw", prepare_adamw);
  export_kernel(env, exports, "clipGradNorm", prepare_clip_grad_norm);
}

}  // namespace talaria::addon
