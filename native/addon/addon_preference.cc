// Bindings for the preference losses (native/core/kernels/preference.h): dpoLoss and rankingLoss.
#include "addon_preference.h"

#include <cfloat>
#include <string>
#include <utility>
#include <vector>

#include "../core/kernels/preference.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

// ---- dpoLoss --------------------------------------------------------------------------------------------

struct DpoLossCall : KernelCall {
  TensorArg policy_chosen, policy_rejected, ref_chosen, ref_rejected, d_policy_chosen, d_policy_rejected;
  DpoLossStats stats{};
  DpoLossArgs args{};

  void execute() override { dpo_loss(policy_chosen.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", stats.loss);
    out.Set("dPolicyChosen", output_value(env, d_policy_chosen));
    out.Set("dPolicyRejected", output_value(env, d_policy_rejected));
    Napi::Object s = Napi::Object::New(env);
    s.Set("rewardAccuracy", stats.reward_accuracy);
    s.Set("rewardMargin", stats.reward_margin);
    s.Set("chosenReward", stats.chosen_reward);
    s.Set("rejectedReward", stats.rejected_reward);
    out.Set("stats", s);
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_dpo_loss(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "dpoLoss: expected an object {policyChosen, policyRejected, refChosen, refRejected, beta?, "
                           "labelSmoothing?, out?}, got " + describe(info[0]));
  Napi::Object input = options_object(info[0], "dpoLoss", {"policyChosen", "policyRejected", "refChosen", "refRejected",
                                                            "beta", "labelSmoothing", "out"});
  auto call = std::make_unique<DpoLossCall>();
  call->policy_chosen = tensor_arg(input.Get("policyChosen"), "policyChosen", DType::F32);
  const int64_t p = call->policy_chosen.tensor.numel();
  const Device device = call->policy_chosen.tensor.device();
  auto pair_input = [&](const char* key) {
    return input_arg(input, key, DType::F32, p, device, "one per pair, like policyChosen");
  };
  call->policy_rejected = pair_input("policyRejected");
  call->ref_chosen = pair_input("refChosen");
  call->ref_rejected = pair_input("refRejected");
  DpoLossArgs& a = call->args;
  // beta becomes an f32 in the kernel: the lower bound keeps it a positive normal number there.
  a.beta = float_option(input, "beta", 0.1, FLT_MIN, FLT_MAX);
  a.label_smoothing = float_option(input, "labelSmoothing", 0.0, 0.0, 0.5, true, false);

  Napi::Object out = options_object(input.Get("out"), "out", {"dPolicyChosen", "dPolicyRejected"});
  const bool as_handle = call->policy_chosen.from_handle;
  call->d_policy_chosen =
      output_arg(info.Env(), out.Get("dPolicyChosen"), "out.dPolicyChosen", p, DType::F32, device, as_handle);
  call->d_policy_rejected =
      output_arg(info.Env(), out.Get("dPolicyRejected"), "out.dPolicyRejected", p, DType::F32, device, as_handle);
  require_outputs_disjoint({{&call->d_policy_chosen, "out.dPolicyChosen"}, {&call->d_policy_rejected, "out.dPolicyRejected"}},
                           {{&call->policy_chosen, "policyChosen"}, {&call->policy_rejected, "policyRejected"},
                            {&call->ref_chosen, "refChosen"}, {&call->ref_rejected, "refRejected"}});
  for (const TensorArg* arg : {&call->policy_chosen, &call->policy_rejected, &call->ref_chosen, &call->ref_rejected,
                               &call->d_policy_chosen, &call->d_policy_rejected})
    call->hold(*arg);

  a.policy_chosen = call->policy_chosen.tensor.data_as<const float>();
  a.policy_rejected = call->policy_rejected.tensor.data_as<const float>();
  a.ref_chosen = call->ref_chosen.tensor.data_as<const float>();
  a.ref_rejected = call->ref_rejected.tensor.data_as<const float>();
  a.num_pairs = p;
  a.d_policy_chosen = call->d_policy_chosen.tensor.data_as<float>();
  a.d_policy_rejected = call->d_policy_rejected.tensor.data_as<float>();
  a.stats = &call->stats;
  return call;
}

// ---- rankingLoss ----------------------------------------------------------------------------------------

struct RankingLossCall : KernelCall {
  TensorArg scores, offsets, d_scores;
  std::optional<TensorArg> ranks;
  std::vector<int32_t> offsets_host, ranks_host;  // the validated copies, which CPU kernels read
  RankingLossStats stats{};
  RankingLossArgs args{};

  void execute() override { ranking_loss(scores.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", stats.loss);
    out.Set("dScores", output_value(env, d_scores));
    Napi::Object s = Napi::Object::New(env);
    s.Set("accuracy", stats.accuracy);
    s.Set("pairs", static_cast<double>(stats.pairs));
    s.Set("tiedPairs", static_cast<double>(stats.tied_pairs));
    s.Set("rankedPrompts", static_cast<double>(stats.ranked_prompts));
    out.Set("stats", s);
    return out;
  }
};

// Every rank must lie in [0, K_p) for its prompt p.
void check_ranks(const std::vector<int32_t>& ranks, const std::vector<int32_t>& offsets) {
  for (size_t p = 0; p + 1 < offsets.size(); p++) {
    const int32_t k = offsets[p + 1] - offsets[p];
    for (int32_t j = offsets[p]; j < offsets[p + 1]; j++)
      if (ranks[j] < 0 || ranks[j] >= k)
        fail(ErrorCode::Range, "ranks: ranks[" + std::to_string(j) + "] = " + std::to_string(ranks[j]) +
                                   " is outside [0, " + std::to_string(k) + ") for prompt " + std::to_string(p) +
                                   ", which has " + std::to_string(k) + " completions");
  }
}

std::unique_ptr<KernelCall> prepare_ranking_loss(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "rankingLoss: expected an object {scores, offsets, ranks?, out?}, got " + describe(info[0]));
  Napi::Object input = options_object(info[0], "rankingLoss", {"scores", "offsets", "ranks", "out"});
  auto call = std::make_unique<RankingLossCall>();
  call->scores = tensor_arg(input.Get("scores"), "scores", DType::F32);
  const int64_t m = call->scores.tensor.numel();
  const Device device = call->scores.tensor.device();
  call->offsets = tensor_arg(input.Get("offsets"), "offsets", DType::I32);
  require_same_device(call->offsets, "offsets", device);
  call->offsets_host = checked_offsets(call->offsets, "offsets", m, "M (the number of scores)");
  call->ranks = optional_input_arg(input, "ranks", DType::I32, m, device, "one per completion, like scores");
  if (call->ranks) {
    call->ranks_host = host_int32(call->ranks->tensor);
    check_ranks(call->ranks_host, call->offsets_host);
  }

  Napi::Object out = options_object(input.Get("out"), "out", {"dScores"});
  call->d_scores = output_arg(info.Env(), out.Get("dScores"), "out.dScores", m, DType::F32, device,
                              call->scores.from_handle);
  require_outputs_disjoint({{&call->d_scores, "out.dScores"}}, {{&call->scores, "scores"},
                                                                {&call->offsets, "offsets"},
                                                                {arg_ptr(call->ranks), "ranks"}});
  for (const TensorArg* arg : {&call->scores, &call->offsets, &call->d_scores}) call->hold(*arg);
  call->hold(call->ranks);

  RankingLossArgs& a = call->args;
  a.scores = call->scores.tensor.data_as<const float>();
  // Device kernels read device memory, which JS cannot change while they run.
  a.offsets = device.is_cpu() ? call->offsets_host.data() : call->offsets.tensor.data_as<const int32_t>();
  a.ranks = !call->ranks ? nullptr
            : device.is_cpu() ? call->ranks_host.data()
                              : call->ranks->tensor.data_as<const int32_t>();
  a.num_completions = m;
  a.num_prompts = static_cast<int64_t>(call->offsets_host.size()) - 1;
  a.d_scores = call->d_scores.tensor.data_as<float>();
  a.stats = &call->stats;
  return call;
}

}  // namespace

void export_preference(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "dpoLoss", prepare_dpo_loss);
  export_kernel(env, exports, "rankingLoss", prepare_ranking_loss);
}

}  // namespace talaria::addon
