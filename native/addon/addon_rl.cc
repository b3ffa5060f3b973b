// Bindings for the RL advantage kernels (native/core/kernels/rl.h): gae and whiten.
#include "addon_rl.h"

#include <algorithm>

#include "../core/kernels/rl.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

struct GaeCall : KernelCall {
  TensorArg rewards, values, cu_seqlens, advantages, returns;
  std::optional<TensorArg> action_mask, bootstrap;
  std::vector<int32_t> cu_seqlens_host;  // the validated copy
  GaeArgs args{};

  void execute() override { gae_advantages(rewards.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("advantages", output_value(env, advantages));
    out.Set("returns", output_value(env, returns));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_gae(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "gae: expected an object {rewards, values, cuSeqlens, actionMask?, bootstrap?, gamma?, lambda?}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(info[0], "gae",
                                      {"rewards", "values", "cuSeqlens", "actionMask", "bootstrap", "gamma", "lambda", "out"});
  auto call = std::make_unique<GaeCall>();
  call->rewards = tensor_arg(input.Get("rewards"), "rewards", DType::F32);
  const int64_t n = call->rewards.tensor.numel();
  const Device device = call->rewards.tensor.device();
  call->values = tensor_arg(input.Get("values"), "values", DType::F32);
  call->cu_seqlens = tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  call->action_mask = optional_tensor_arg(input.Get("actionMask"), "actionMask", DType::U8);
  call->bootstrap = optional_tensor_arg(input.Get("bootstrap"), "bootstrap", DType::F32);
  require_length(call->values, "values", n, "one per token, like rewards");
  require_same_device(call->values, "values", device);
  require_same_device(call->cu_seqlens, "cuSeqlens", device);
  call->cu_seqlens_host = checked_offsets(call->cu_seqlens, "cuSeqlens", n, "N (the number of tokens)");
  const int64_t num_seqs = call->cu_seqlens.tensor.numel() - 1;
  if (call->action_mask) {
    require_length(*call->action_mask, "actionMask", n, "one per token, like rewards");
    require_same_device(*call->action_mask, "actionMask", device);
  }
  if (call->bootstrap) {
    require_length(*call->bootstrap, "bootstrap", num_seqs, "one per sequence, cuSeqlens.length - 1");
    require_same_device(*call->bootstrap, "bootstrap", device);
  }
  const double gamma = number_option(input, "gamma", 1.0, 0.0, 1.0);
  const double lambda = number_option(input, "lambda", 0.95, 0.0, 1.0);

  Napi::Object out = options_object(input.Get("out"), "out", {"advantages", "returns"});
  const bool as_handle = call->rewards.from_handle;
  call->advantages = output_arg(info.Env(), out.Get("advantages"), "out.advantages", n, DType::F32, device, as_handle);
  call->returns = output_arg(info.Env(), out.Get("returns"), "out.returns", n, DType::F32, device, as_handle);
  require_outputs_disjoint(
      {{&call->advantages, "out.advantages"}, {&call->returns, "out.returns"}},
      {{&call->rewards, "rewards"}, {&call->values, "values"}, {&call->cu_seqlens, "cuSeqlens"},
       {call->action_mask ? &*call->action_mask : nullptr, "actionMask"},
       {call->bootstrap ? &*call->bootstrap : nullptr, "bootstrap"}});
  for (const TensorArg* arg : {&call->rewards, &call->values, &call->cu_seqlens, &call->advantages, &call->returns})
    call->hold(*arg);
  call->hold(call->action_mask);
  call->hold(call->bootstrap);

  GaeArgs& a = call->args;
  a.rewards = call->rewards.tensor.data_as<const float>();
  a.values = call->values.tensor.data_as<const float>();
  // Device kernels read device memory, which JS cannot change while they run.
  a.cu_seqlens = device.is_cpu() ? call->cu_seqlens_host.data() : call->cu_seqlens.tensor.data_as<const int32_t>();
  a.action_mask = call->action_mask ? call->action_mask->tensor.data_as<const uint8_t>() : nullptr;
  a.bootstrap = call->bootstrap ? call->bootstrap->tensor.data_as<const float>() : nullptr;
  a.num_tokens = n;
  a.num_seqs = num_seqs;
  a.max_seqlen = longest_segment(call->cu_seqlens_host);
  a.gamma = static_cast<float>(gamma);
  a.lambda = static_cast<float>(lambda);
  a.advantages = call->advantages.tensor.data_as<float>();
  a.returns = call->returns.tensor.data_as<float>();
  return call;
}

struct WhitenCall : KernelCall {
  TensorArg x, out;
  std::optional<TensorArg> mask;
  WhitenArgs args{};

  void execute() override { whiten(x.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, out); }
};

std::unique_ptr<KernelCall> prepare_whiten(const Napi::CallbackInfo& info) {
  auto call = std::make_unique<WhitenCall>();
  call->x = tensor_arg(info[0], "x", DType::F32);
  const int64_t n = call->x.tensor.numel();
  const Device device = call->x.tensor.device();
  Napi::Object options = options_object(info[1], "whiten options", {"mask", "shiftMean", "unbiased", "eps", "out"});
  call->mask = optional_tensor_arg(options.Get("mask"), "mask", DType::U8);
  if (call->mask) {
    require_length(*call->mask, "mask", n, "one per element of x");
    require_same_device(*call->mask, "mask", device);
  }
  WhitenArgs& a = call->args;
  a.shift_mean = boolean_option(options, "shiftMean", true);
  a.unbiased = boolean_option(options, "unbiased", true);
  a.eps = float_option(options, "eps", 1e-8, 0.0, 1.0, /*lo_inclusive=*/false);
  call->out = output_arg(info.Env(), options.Get("out"), "out", n, DType::F32, device, call->x.from_handle);
  require_disjoint(call->out, "out", call->x, "x", /*allow_identical=*/true);
  if (call->mask) require_disjoint(call->out, "out", *call->mask, "mask");
  call->hold(call->x);
  call->hold(call->mask);
  call->hold(call->out);
  a.x = call->x.tensor.data_as<const float>();
  a.mask = call->mask ? call->mask->tensor.data_as<const uint8_t>() : nullptr;
  a.n = n;
  a.out = call->out.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_rl(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "gae", prepare_gae);
  export_kernel(env, exports, "whiten", prepare_whiten);
}

}  // namespace talaria::addon
