// Bindings for the RL objective kernels (native/core/kernels/rl_loss.h): ppoLoss and valueLoss.
#include "addon_rl_loss.h"

#include <cfloat>
#include <cmath>

#include "../core/kernels/rl_loss.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

void parse_aggregation(const Napi::Object& input, LossAggregation& mode, double& normalizer) {
  mode = static_cast<LossAggregation>(enum_option(
      input, "aggregation", static_cast<int>(LossAggregation::TokenMean),
      {{"token-mean", static_cast<int>(LossAggregation::TokenMean)},
       {"seq-mean-token-mean", static_cast<int>(LossAggregation::SeqMeanTokenMean)},
       {"seq-mean-token-sum", static_cast<int>(LossAggregation::SeqMeanTokenSum)},
       {"seq-mean-token-sum-norm", static_cast<int>(LossAggregation::SeqMeanTokenSumNorm)}}));
  const bool wants_normalizer = mode == LossAggregation::SeqMeanTokenSumNorm;
  const bool has_normalizer = !input.Get("normalizer").IsUndefined();
  if (wants_normalizer && !has_normalizer)
    fail(ErrorCode::Range, "normalizer: aggregation 'seq-mean-token-sum-norm' needs a normalizer (such as the "
                           "maximum response length), got none");
  if (!wants_normalizer && has_normalizer)
    fail(ErrorCode::Range, "normalizer: only aggregation 'seq-mean-token-sum-norm' uses a normalizer; remove it or "
                           "set that aggregation");
  // The f32 token weight is 1 / (active sequences * normalizer): below 1/FLT_MAX it would overflow.
  normalizer = number_option(input, "normalizer", 1.0, 1.0 / FLT_MAX, kFloatMax);
}

Napi::Array flat_array(Napi::Env env, std::initializer_list<Napi::Value> values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  uint32_t i = 0;
  for (const Napi::Value& value : values) out.Set(i++, value);
  return out;
}

// ---- ppoLoss ------------------------------------------------------------------------------------

struct PpoLossCall : KernelCall {
  TensorArg logp, old_logp, advantages, cu_seqlens, d_logp;
  std::optional<TensorArg> action_mask, ref_logp, entropy, d_entropy;
  std::vector<int32_t> cu_seqlens_host;  // the validated copy, which CPU kernels read
  PpoLossStats stats{};
  PpoLossArgs args{};

  void execute() override { ppo_loss(logp.tensor.device(), args); }

  // A flat array, which lib/ops/rl-loss.ts names (ppoOutput there): a named property costs ~0.1 us
  // through N-API, an element far less.
  Napi::Value result(Napi::Env env) override {
    return flat_array(env, {Napi::Number::New(env, stats.loss), output_value(env, d_logp),
                            d_entropy ? output_value(env, *d_entropy) : env.Undefined(),
                            Napi::Number::New(env, stats.pg_loss), Napi::Number::New(env, stats.clip_frac),
                            Napi::Number::New(env, stats.clip_frac_lower), Napi::Number::New(env, stats.approx_kl),
                            Napi::Number::New(env, stats.ratio_mean), Napi::Number::New(env, stats.ratio_max),
                            ref_logp ? Napi::Value(Napi::Number::New(env, stats.kl_mean)) : env.Null(),
                            entropy ? Napi::Value(Napi::Number::New(env, stats.entropy_mean)) : env.Null(),
                            Napi::Number::New(env, static_cast<double>(stats.action_tokens)),
                            Napi::Number::New(env, static_cast<double>(stats.active_seqs))});
  }
};

std::unique_ptr<KernelCall> prepare_ppo_loss(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "ppoLoss: expected an object {logp, oldLogp, advantages, cuSeqlens, ...}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(
      info[0], "ppoLoss",
      {"logp", "oldLogp", "advantages", "cuSeqlens", "actionMask", "refLogp", "entropy", "clipLow", "clipHigh",
       "dualClip", "klCoef", "klEstimator", "klClamp", "entropyCoef", "aggregation", "normalizer", "out"});
  auto call = std::make_unique<PpoLossCall>();
  call->logp = tensor_arg(input.Get("logp"), "logp", DType::F32);
  const int64_t n = call->logp.tensor.numel();
  const Device device = call->logp.tensor.device();
  call->old_logp = input_arg(input, "oldLogp", DType::F32, n, device, "one per token, like logp");
  call->advantages = input_arg(input, "advantages", DType::F32, n, device, "one per token, like logp");
  call->cu_seqlens = tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  require_same_device(call->cu_seqlens, "cuSeqlens", device);
  call->cu_seqlens_host = checked_offsets(call->cu_seqlens, "cuSeqlens", n, "N (the number of tokens)");
  call->action_mask = optional_input_arg(input, "actionMask", DType::U8, n, device, "one per token, like logp");
  call->ref_logp = optional_input_arg(input, "refLogp", DType::F32, n, device, "one per token, like logp");
  call->entropy = optional_input_arg(input, "entropy", DType::F32, n, device, "one per token, like logp");

  PpoLossArgs& a = call->args;
  a.clip_low = float_option(input, "clipLow", 0.2, 0.0, 1.0, false, false);
  a.clip_high = float_option(input, "clipHigh", a.clip_low, 0.0, kFloatMax, false);
  a.dual_clip = float_option(input, "dualClip", 0.0, 1.0, kFloatMax, false);
  a.kl_coef = float_option(input, "klCoef", 0.0, 0.0, kFloatMax);
  a.kl_estimator = static_cast<KlEstimator>(enum_option(input, "klEstimator", static_cast<int>(KlEstimator::K3),
                                                        {{"k1", static_cast<int>(KlEstimator::K1)},
                                                         {"k2", static_cast<int>(KlEstimator::K2)},
                                                         {"k3", static_cast<int>(KlEstimator::K3)}}));
  a.kl_clamp = float_option(input, "klClamp", 10.0, 0.0, INFINITY, false);
  a.entropy_coef = float_option(input, "entropyCoef", 0.0, 0.0, kFloatMax);
  if (a.kl_coef > 0 && !call->ref_logp)
    fail(ErrorCode::Range, "klCoef: a KL penalty needs refLogp (the reference policy's log-probs), got klCoef = " +
                               std::to_string(a.kl_coef) + " and no refLogp");
  if (a.entropy_coef > 0 && !call->entropy)
    fail(ErrorCode::Range, "entropyCoef: an entropy bonus needs entropy (per-token entropies), got entropyCoef = " +
                               std::to_string(a.entropy_coef) + " and no entropy");
  parse_aggregation(input, a.aggregation, a.normalizer);

  Napi::Object out = options_object(input.Get("out"), "out", {"dLogp", "dEntropy"});
  const bool as_handle = call->logp.from_handle;
  call->d_logp = output_arg(info.Env(), out.Get("dLogp"), "out.dLogp", n, DType::F32, device, as_handle);
  if (call->entropy)
    call->d_entropy = output_arg(info.Env(), out.Get("dEntropy"), "out.dEntropy", n, DType::F32, device, as_handle);
  else if (!out.Get("dEntropy").IsUndefined())
    fail(ErrorCode::Shape, "out.dEntropy: there is no entropy input to differentiate; pass entropy or drop out.dEntropy");
  require_outputs_disjoint({{&call->d_logp, "out.dLogp"}, {arg_ptr(call->d_entropy), "out.dEntropy"}},
                           {{&call->logp, "logp"}, {&call->old_logp, "oldLogp"}, {&call->advantages, "advantages"},
                            {&call->cu_seqlens, "cuSeqlens"}, {arg_ptr(call->action_mask), "actionMask"},
                            {arg_ptr(call->ref_logp), "refLogp"}, {arg_ptr(call->entropy), "entropy"}});
  for (const TensorArg* arg : {&call->logp, &call->old_logp, &call->advantages, &call->cu_seqlens, &call->d_logp})
    call->hold(*arg);
  for (const auto* arg : {&call->action_mask, &call->ref_logp, &call->entropy, &call->d_entropy}) call->hold(*arg);

  a.logp = call->logp.tensor.data_as<const float>();
  a.old_logp = call->old_logp.tensor.data_as<const float>();
  a.advantages = call->advantages.tensor.data_as<const float>();
  a.action_mask = call->action_mask ? call->action_mask->tensor.data_as<const uint8_t>() : nullptr;
  // Device kernels read device memory, which JS cannot change while they run.
  a.cu_seqlens = device.is_cpu() ? call->cu_seqlens_host.data() : call->cu_seqlens.tensor.data_as<const int32_t>();
  a.ref_logp = call->ref_logp ? call->ref_logp->tensor.data_as<const float>() : nullptr;
  a.entropy = call->entropy ? call->entropy->tensor.data_as<const float>() : nullptr;
  a.num_tokens = n;
  a.num_seqs = static_cast<int64_t>(call->cu_seqlens_host.size()) - 1;
  a.d_logp = call->d_logp.tensor.data_as<float>();
  a.d_entropy = call->d_entropy ? call->d_entropy->tensor.data_as<float>() : nullptr;
  a.stats = &call->stats;
  return call;
}

// ---- valueLoss ----------------------------------------------------------------------------------

struct ValueLossCall : KernelCall {
  TensorArg values, old_values, returns, d_values;
  std::optional<TensorArg> action_mask, cu_seqlens;
  std::vector<int32_t> cu_seqlens_host;  // validated copy, or {0, N} when the caller gave none
  Tensor cu_seqlens_device;              // {0, N} on the device when the caller gave none
  ValueLossStats stats{};
  ValueLossArgs args{};

  void execute() override { value_loss(values.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {  // flat, as PpoLossCall's
    return flat_array(env, {Napi::Number::New(env, stats.loss), output_value(env, d_values),
                            Napi::Number::New(env, stats.clip_frac),
                            Napi::Number::New(env, static_cast<double>(stats.action_tokens)),
                            Napi::Number::New(env, static_cast<double>(stats.active_seqs))});
  }
};

std::unique_ptr<KernelCall> prepare_value_loss(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "valueLoss: expected an object {values, oldValues, returns, ...}, got " + describe(info[0]));
  Napi::Object input = options_object(info[0], "valueLoss",
                                      {"values", "oldValues", "returns", "actionMask", "cuSeqlens", "clipRange",
                                       "aggregation", "normalizer", "out"});
  auto call = std::make_unique<ValueLossCall>();
  call->values = tensor_arg(input.Get("values"), "values", DType::F32);
  const int64_t n = call->values.tensor.numel();
  const Device device = call->values.tensor.device();
  call->old_values = input_arg(input, "oldValues", DType::F32, n, device, "one per token, like values");
  call->returns = input_arg(input, "returns", DType::F32, n, device, "one per token, like values");
  call->action_mask = optional_input_arg(input, "actionMask", DType::U8, n, device, "one per token, like values");
  call->cu_seqlens = optional_tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  if (call->cu_seqlens) {
    require_same_device(*call->cu_seqlens, "cuSeqlens", device);
    call->cu_seqlens_host = checked_offsets(*call->cu_seqlens, "cuSeqlens", n, "N (the number of tokens)");
  } else {
    call->cu_seqlens_host = {0, static_cast<int32_t>(n)};
    if (!device.is_cpu()) {
      const Tensor host = Tensor::borrow(call->cu_seqlens_host.data(), {2}, DType::I32, Device::cpu());
      call->cu_seqlens_device = host.to(device);
    }
  }
  ValueLossArgs& a = call->args;
  a.clip_range = float_option(input, "clipRange", 0.2, 0.0, INFINITY, false);
  parse_aggregation(input, a.aggregation, a.normalizer);

  Napi::Object out = options_object(input.Get("out"), "out", {"dValues"});
  call->d_values = output_arg(info.Env(), out.Get("dValues"), "out.dValues", n, DType::F32, device,
                              call->values.from_handle);
  require_outputs_disjoint({{&call->d_values, "out.dValues"}},
                           {{&call->values, "values"}, {&call->old_values, "oldValues"}, {&call->returns, "returns"},
                            {arg_ptr(call->action_mask), "actionMask"}, {arg_ptr(call->cu_seqlens), "cuSeqlens"}});
  for (const TensorArg* arg : {&call->values, &call->old_values, &call->returns, &call->d_values}) call->hold(*arg);
  call->hold(call->action_mask);
  call->hold(call->cu_seqlens);

  a.values = call->values.tensor.data_as<const float>();
  a.old_values = call->old_values.tensor.data_as<const float>();
  a.returns = call->returns.tensor.data_as<const float>();
  a.action_mask = call->action_mask ? call->action_mask->tensor.data_as<const uint8_t>() : nullptr;
  if (device.is_cpu()) a.cu_seqlens = call->cu_seqlens_host.data();
  else if (call->cu_seqlens) a.cu_seqlens = call->cu_seqlens->tensor.data_as<const int32_t>();
  else a.cu_seqlens = call->cu_seqlens_device.data_as<const int32_t>();
  a.num_tokens = n;
  a.num_seqs = static_cast<int64_t>(call->cu_seqlens_host.size()) - 1;
  a.d_values = call->d_values.tensor.data_as<float>();
  a.stats = &call->stats;
  return call;
}

}  // namespace

void export_rl_loss(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "ppoLoss", prepare_ppo_loss);
  export_kernel(env, exports, "valueLoss", prepare_value_loss);
}

}  // namespace talaria::addon
