// Bindings for the reward kernels (native/core/kernels/rewards.h): shapeRewards and groupAdvantages.
#include "addon_rewards.h"

#include <cfloat>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "../core/kernels/rewards.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {


// cuSeqlens: i32[B+1] on `device`, starting at 0, never decreasing and ending at `num_tokens`.
std::vector<int32_t> checked_cu_seqlens(const TensorArg& cu_seqlens, int64_t num_seqs, int64_t num_tokens,
                                        Device device, const std::string& tokens_name) {
  require_length(cu_seqlens, "cuSeqlens", num_seqs + 1, "B + 1, one more than scores");
  require_same_device(cu_seqlens, "cuSeqlens", device);
  return checked_offsets(cu_seqlens, "cuSeqlens", num_tokens, tokens_name);
}

// ---- the reward normalizer's state ------------------------------------------------------------------------

struct NormalizerState {
  RunningMoments moments;
  bool shift_mean;
  double eps;  // as given, so the state round-trips exactly; the kernel reads it as an f32
};

// {count, mean, m2, shiftMean, eps}, every field required: a checkpoint that lost one is broken, not a default.
NormalizerState parse_normalizer_state(const Napi::Value& value) {
  const char* const keys[] = {"count", "mean", "m2", "shiftMean", "eps"};
  Napi::Object state = options_object(value, "normalizerState", {keys[0], keys[1], keys[2], keys[3], keys[4]});
  for (const char* key : keys)
    if (state.Get(key).IsUndefined())
      fail(ErrorCode::DType, std::string("normalizerState.") + key + ": required, got undefined");
  NormalizerState out{};
  try {
    out.moments.count = number_option(state, "count", 0.0, 0.0, kMaxSafeInteger);
    if (std::floor(out.moments.count) != out.moments.count)
      fail(ErrorCode::Range, "count: expected an integer (scores seen), got " + state.Get("count").ToString().Utf8Value());
    out.moments.mean = number_option(state, "mean", 0.0, -DBL_MAX, DBL_MAX);
    out.moments.m2 = number_option(state, "m2", 0.0, 0.0, DBL_MAX);
    out.shift_mean = boolean_option(state, "shiftMean", true);
    // The lower bound keeps eps a positive normal number as an f32.
    out.eps = number_option(state, "eps", 1e-8, FLT_MIN, kFloatMax);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("normalizerState.") + e.what());
  }
  if (out.moments.count == 0 && (out.moments.mean != 0 || out.moments.m2 != 0))
    fail(ErrorCode::Range, "normalizerState: count is 0 but mean or m2 is not (a state that saw no scores is all 0)");
  return out;
}

Napi::Object normalizer_state_value(Napi::Env env, const NormalizerState& state) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", state.moments.count);
  out.Set("mean", state.moments.mean);
  out.Set("m2", state.moments.m2);
  out.Set("shiftMean", state.shift_mean);
  out.Set("eps", state.eps);
  return out;
}

// ---- shapeRewards -------------------------------------------------------------------------------------------

struct ShapeRewardsCall : KernelCall {
  TensorArg scores, logp, ref_logp, cu_seqlens, rewards, shaped_scores;
  std::optional<TensorArg> action_mask, ended_with_eos;
  std::vector<int32_t> cu_seqlens_host;  // the validated copy, which CPU kernels read
  std::vector<float> scores_host;        // the validated (finite) copy, which CPU kernels read
  std::optional<NormalizerState> normalizer;
  ShapeRewardsStats stats{};
  ShapeRewardsArgs args{};

  void execute() override { shape_rewards(scores.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("rewards", output_value(env, rewards));
    out.Set("shapedScores", output_value(env, shaped_scores));
    Napi::Object s = Napi::Object::New(env);
    s.Set("kl", stats.kl_mean);
    s.Set("klPerSequence", stats.kl_seq_mean);
    s.Set("score", stats.score_mean);
    s.Set("shapedScore", stats.shaped_score_mean);
    s.Set("missingEos", static_cast<double>(stats.missing_eos));
    s.Set("actionTokens", static_cast<double>(stats.action_tokens));
    s.Set("activeSeqs", static_cast<double>(stats.active_seqs));
    out.Set("stats", s);
    out.Set("normalizerState", normalizer ? Napi::Value(normalizer_state_value(env, *normalizer)) : env.Undefined());
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_shape_rewards(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "shapeRewards: expected an object {scores, logp, refLogp, cuSeqlens, ...}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(
      info[0], "shapeRewards",
      {"scores", "logp", "refLogp", "cuSeqlens", "actionMask", "klCoef", "klEstimator", "klClamp", "endedWithEos",
       "missingEosPenalty", "scoreClip", "normalizerState", "out"});
  auto call = std::make_unique<ShapeRewardsCall>();
  call->scores = tensor_arg(input.Get("scores"), "scores", DType::F32);
  const int64_t num_seqs = call->scores.tensor.numel();
  const Device device = call->scores.tensor.device();
  // A NaN or infinite score would poison the running normalizer for good (and every reward after it).
  call->scores_host = host_float32(call->scores.tensor);
  for (size_t b = 0; b < call->scores_host.size(); b++)
    if (!std::isfinite(call->scores_host[b]))
      fail(ErrorCode::Range, "scores: expected finite reward-model scores, got scores[" + std::to_string(b) + "] = " +
                                 std::to_string(call->scores_host[b]));
  call->logp = tensor_arg(input.Get("logp"), "logp", DType::F32);
  require_same_device(call->logp, "logp", device);
  const int64_t n = call->logp.tensor.numel();
  call->ref_logp = input_arg(input, "refLogp", DType::F32, n, device, "one per token, like logp");
  call->cu_seqlens = tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  call->cu_seqlens_host = checked_cu_seqlens(call->cu_seqlens, num_seqs, n, device, "N (the length of logp)");
  call->action_mask = optional_input_arg(input, "actionMask", DType::U8, n, device, "one per token, like logp");
  call->ended_with_eos = optional_input_arg(input, "endedWithEos", DType::U8, num_seqs, device, "one per sequence, like scores");

  ShapeRewardsArgs& a = call->args;
  a.kl_coef = float_option(input, "klCoef", 0.02, 0.0, kFloatMax);
  a.kl_estimator = static_cast<KlEstimator>(enum_option(input, "klEstimator", static_cast<int>(KlEstimator::K1),
                                                        {{"k1", static_cast<int>(KlEstimator::K1)},
                                                         {"k2", static_cast<int>(KlEstimator::K2)},
                                                         {"k3", static_cast<int>(KlEstimator::K3)}}));
  a.kl_clamp = float_option(input, "klClamp", INFINITY, 0.0, INFINITY, false);
  a.missing_eos_penalty = float_option(input, "missingEosPenalty", 0.0, 0.0, kFloatMax);
  if (a.missing_eos_penalty > 0 && !call->ended_with_eos)
    fail(ErrorCode::Range, "missingEosPenalty: a penalty for sequences without EOS needs endedWithEos (one flag per "
                           "sequence), got missingEosPenalty = " + std::to_string(a.missing_eos_penalty) +
                               " and no endedWithEos");
  a.score_clip = float_option(input, "scoreClip", INFINITY, 0.0, INFINITY, false);
  if (!input.Get("normalizerState").IsUndefined()) call->normalizer = parse_normalizer_state(input.Get("normalizerState"));

  Napi::Object out = options_object(input.Get("out"), "out", {"rewards", "shapedScores"});
  const bool as_handle = call->scores.from_handle;
  call->rewards = output_arg(info.Env(), out.Get("rewards"), "out.rewards", n, DType::F32, device, as_handle);
  call->shaped_scores =
      output_arg(info.Env(), out.Get("shapedScores"), "out.shapedScores", num_seqs, DType::F32, device, as_handle);
  require_outputs_disjoint({{&call->rewards, "out.rewards"}, {&call->shaped_scores, "out.shapedScores"}},
                           {{&call->scores, "scores"}, {&call->logp, "logp"}, {&call->ref_logp, "refLogp"},
                            {&call->cu_seqlens, "cuSeqlens"}, {arg_ptr(call->action_mask), "actionMask"},
                            {arg_ptr(call->ended_with_eos), "endedWithEos"}});
  for (const TensorArg* arg : {&call->scores, &call->logp, &call->ref_logp, &call->cu_seqlens, &call->rewards,
                               &call->shaped_scores})
    call->hold(*arg);
  call->hold(call->action_mask);
  call->hold(call->ended_with_eos);

  a.scores = device.is_cpu() ? call->scores_host.data() : call->scores.tensor.data_as<const float>();
  a.logp = call->logp.tensor.data_as<const float>();
  a.ref_logp = call->ref_logp.tensor.data_as<const float>();
  a.action_mask = call->action_mask ? call->action_mask->tensor.data_as<const uint8_t>() : nullptr;
  // Device kernels read device memory, which JS cannot change while they run.
  a.cu_seqlens = device.is_cpu() ? call->cu_seqlens_host.data() : call->cu_seqlens.tensor.data_as<const int32_t>();
  a.ended_with_eos = call->ended_with_eos ? call->ended_with_eos->tensor.data_as<const uint8_t>() : nullptr;
  a.num_tokens = n;
  a.num_seqs = num_seqs;
  if (call->normalizer) {
    a.normalizer = &call->normalizer->moments;  // updated in place by the kernel
    a.normalize_shift = call->normalizer->shift_mean;
    a.normalize_eps = static_cast<float>(call->normalizer->eps);
  }
  a.rewards = call->rewards.tensor.data_as<float>();
  a.shaped_scores = call->shaped_scores.tensor.data_as<float>();
  a.stats = &call->stats;
  return call;
}

// ---- groupAdvantages ----------------------------------------------------------------------------------------

struct GroupAdvantagesCall : KernelCall {
  TensorArg scores, advantages;
  std::optional<TensorArg> group_offsets, cu_seqlens, action_mask, token_advantages;
  std::vector<int32_t> group_offsets_host, cu_seqlens_host;  // validated copies, which CPU kernels read
  GroupAdvantagesArgs args{};

  void execute() override { group_advantages(scores.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("advantages", output_value(env, advantages));
    out.Set("tokenAdvantages", token_advantages ? output_value(env, *token_advantages) : env.Undefined());
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_group_advantages(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "groupAdvantages: expected an object {scores, groupSize or groupOffsets, ...}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(info[0], "groupAdvantages",
                                      {"scores", "groupSize", "groupOffsets", "estimator", "eps", "unbiased",
                                       "cuSeqlens", "actionMask", "out"});
  auto call = std::make_unique<GroupAdvantagesCall>();
  call->scores = tensor_arg(input.Get("scores"), "scores", DType::F32);
  const int64_t num_seqs = call->scores.tensor.numel();
  const Device device = call->scores.tensor.device();
  GroupAdvantagesArgs& a = call->args;

  const bool has_size = !input.Get("groupSize").IsUndefined();
  call->group_offsets = optional_tensor_arg(input.Get("groupOffsets"), "groupOffsets", DType::I32);
  if (has_size == call->group_offsets.has_value())
    fail(ErrorCode::Range, std::string("groupSize, groupOffsets: give exactly one (groupSize for groups of equal "
                                       "size, groupOffsets for ragged ones), got ") + (has_size ? "both" : "neither"));
  if (has_size) {
    const double size = number_option(input, "groupSize", 1.0, 1.0, 2147483647.0);
    if (std::floor(size) != size) fail(ErrorCode::Range, "groupSize: expected an integer, got " + std::to_string(size));
    a.group_size = static_cast<int64_t>(size);
    if (num_seqs % a.group_size != 0)
      fail(ErrorCode::Shape, "groupSize: " + std::to_string(a.group_size) + " does not divide the number of scores B = " +
                                 std::to_string(num_seqs));
    a.num_groups = num_seqs / a.group_size;
  } else {
    require_same_device(*call->group_offsets, "groupOffsets", device);
    call->group_offsets_host = checked_offsets(*call->group_offsets, "groupOffsets", num_seqs, "B (the number of scores)");
    a.num_groups = static_cast<int64_t>(call->group_offsets_host.size()) - 1;
  }
  a.estimator = static_cast<GroupEstimator>(enum_option(input, "estimator", static_cast<int>(GroupEstimator::Grpo),
                                                        {{"grpo", static_cast<int>(GroupEstimator::Grpo)},
                                                         {"dr-grpo", static_cast<int>(GroupEstimator::DrGrpo)},
                                                         {"rloo", static_cast<int>(GroupEstimator::Rloo)}}));
  // eps becomes an f32 in the kernel: the lower bound keeps it a positive normal number there.
  a.eps = float_option(input, "eps", 1e-6, FLT_MIN, kFloatMax);
  a.unbiased = boolean_option(input, "unbiased", true);

  call->cu_seqlens = optional_tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  int64_t n = 0;
  if (call->cu_seqlens) {
    // N is the mask's length when there is one, else wherever the (otherwise validated) offsets end.
    call->action_mask = optional_tensor_arg(input.Get("actionMask"), "actionMask", DType::U8);
    require_length(*call->cu_seqlens, "cuSeqlens", num_seqs + 1, "B + 1, one more than scores");
    n = call->action_mask ? call->action_mask->tensor.numel() : host_int32(call->cu_seqlens->tensor).back();
    call->cu_seqlens_host = checked_cu_seqlens(*call->cu_seqlens, num_seqs, n, device,
                                               call->action_mask ? "N (the length of actionMask)" : "N");
    if (call->action_mask) require_same_device(*call->action_mask, "actionMask", device);
  } else if (!input.Get("actionMask").IsUndefined()) {
    fail(ErrorCode::Range, "actionMask: marks tokens, so it needs cuSeqlens (each completion's tokens), got no cuSeqlens");
  }

  Napi::Object out = options_object(input.Get("out"), "out", {"advantages", "tokenAdvantages"});
  const bool as_handle = call->scores.from_handle;
  call->advantages = output_arg(info.Env(), out.Get("advantages"), "out.advantages", num_seqs, DType::F32, device, as_handle);
  if (call->cu_seqlens)
    call->token_advantages =
        output_arg(info.Env(), out.Get("tokenAdvantages"), "out.tokenAdvantages", n, DType::F32, device, as_handle);
  else if (!out.Get("tokenAdvantages").IsUndefined())
    fail(ErrorCode::Shape, "out.tokenAdvantages: there are no tokens without cuSeqlens; pass cuSeqlens or drop "
                           "out.tokenAdvantages");
  require_outputs_disjoint({{&call->advantages, "out.advantages"}, {arg_ptr(call->token_advantages), "out.tokenAdvantages"}},
                           {{&call->scores, "scores"}, {arg_ptr(call->group_offsets), "groupOffsets"},
                            {arg_ptr(call->cu_seqlens), "cuSeqlens"}, {arg_ptr(call->action_mask), "actionMask"}});
  call->hold(call->scores);
  call->hold(call->advantages);
  for (const auto* arg : {&call->group_offsets, &call->cu_seqlens, &call->action_mask, &call->token_advantages})
    call->hold(*arg);

  const bool cpu = device.is_cpu();
  a.scores = call->scores.tensor.data_as<const float>();
  if (call->group_offsets)
    a.group_offsets = cpu ? call->group_offsets_host.data() : call->group_offsets->tensor.data_as<const int32_t>();
  a.num_seqs = num_seqs;
  a.advantages = call->advantages.tensor.data_as<float>();
  if (call->cu_seqlens) {
    a.cu_seqlens = cpu ? call->cu_seqlens_host.data() : call->cu_seqlens->tensor.data_as<const int32_t>();
    a.action_mask = call->action_mask ? call->action_mask->tensor.data_as<const uint8_t>() : nullptr;
    a.num_tokens = n;
    a.token_advantages = call->token_advantages->tensor.data_as<float>();
  }
  return call;
}

}  // namespace

void export_rewards(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "shapeRewards", prepare_shape_rewards);
  export_kernel(env, exports, "groupAdvantages", prepare_group_advantages);
}

}  // namespace talaria::addon
