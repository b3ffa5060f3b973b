// Bindings for the roofline probes (native/core/kernels/roofline.h).
#include "addon_roofline.h"

#include <cmath>

#include "../core/kernels/roofline.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

struct TriadCall : KernelCall {
  TensorArg a, b, c;
  StreamTriadArgs args{};
  void execute() override { stream_triad(a.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return env.Undefined(); }
};

// streamTriad(a, b, c, scalar): a[i] = b[i] + scalar * c[i], in place into `a`.
std::unique_ptr<KernelCall> prepare_triad(const Napi::CallbackInfo& info) {
  auto call = std::make_unique<TriadCall>();
  call->a = tensor_arg(info[0], "a", DType::F32);
  call->b = tensor_arg(info[1], "b", DType::F32);
  call->c = tensor_arg(info[2], "c", DType::F32);
  const int64_t n = call->a.tensor.numel();
  const Device device = call->a.tensor.device();
  require_length(call->b, "b", n, "the length of a");
  require_length(call->c, "c", n, "the length of a");
  require_same_device(call->b, "b", device);
  require_same_device(call->c, "c", device);
  if (!info[3].IsNumber()) fail(ErrorCode::DType, "scalar: expected a number, got " + describe(info[3]));
  const double scalar = info[3].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(scalar)) fail(ErrorCode::Range, "scalar: expected a finite number, got " + info[3].ToString().Utf8Value());
  for (const TensorArg* arg : {&call->a, &call->b, &call->c}) call->hold(*arg);
  call->args = {call->a.tensor.data_as<float>(), call->b.tensor.data_as<const float>(),
                call->c.tensor.data_as<const float>(), static_cast<float>(scalar), n};
  return call;
}

struct FmaPeakCall : KernelCall {
  TensorArg out;
  FmaPeakArgs args{};
  void execute() override { fma_peak(out.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return Napi::Number::New(env, args.flops); }
};

// fmaPeak(out, iterations): every element of `out` is one worker's chain sum; returns the FLOPs done.
std::unique_ptr<KernelCall> prepare_fma_peak(const Napi::CallbackInfo& info) {
  auto call = std::make_unique<FmaPeakCall>();
  call->out = tensor_arg(info[0], "out", DType::F32);
  Napi::Object options = Napi::Object::New(info.Env());
  options.Set("iterations", info[1]);
  const double iterations = integer_option(options, "iterations", -1, 1, kMaxSafeInteger, "an integer in [1, 2^53)");
  call->hold(call->out);
  call->args = {call->out.tensor.data_as<float>(), call->out.tensor.numel(), static_cast<int64_t>(iterations), 1.0f, 0.0};
  return call;
}

}  // namespace

void export_roofline(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "streamTriad", prepare_triad);
  export_kernel(env, exports, "fmaPeak", prepare_fma_peak);
}

}  // namespace talaria::addon
