// Bindings for the logit kernels (native/core/kernels/logits.h): logprobEntropy, logprobEntropyBackward,
// crossEntropy, klDivergence and klDivergenceBackward.
//
// Every call takes logits [N, V] (a 2-D Tensor, or a Float32Array with the option vocabSize). Targets and
// per-row temperatures are copied to the host and validated there (targets in [0, V), temperatures in the
// legal range); CPU kernels read those copies, so JS changing the arrays during a Promise-form call cannot
// send a kernel out of bounds. The backward kernels and crossEntropy may write dLogits over the logits
// (option inPlace, or the logits passed as out.dLogits); any other overlap is rejected.
#include "addon_logits.h"

#include <cmath>
#include <limits>

#include "../core/kernels/logits.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

// ---- Shared argument parsing ----------------------------------------------------------------------

// The logits of a call, their temperature(s) and the validated host copy of per-row temperatures.
struct LogitsInput {
  TensorArg logits;
  std::optional<TensorArg> temperatures;
  std::vector<float> temperatures_host;
  float temperature = 1.0f;

  int64_t rows() const { return logits.tensor.shape()[0]; }
  int64_t vocab() const { return logits.tensor.shape()[1]; }
  Device device() const { return logits.tensor.device(); }

  LogitsView view() const {
    LogitsView v{logits.tensor.data_as<const float>(), rows(), vocab(), temperature, nullptr};
    // Device kernels read device memory, which JS cannot change while they run.
    if (temperatures)
      v.temperatures = device().is_cpu() ? temperatures_host.data() : temperatures->tensor.data_as<const float>();
    return v;
  }
};

// vocabSize: the column count of typed-array logits (-1 when absent: a Tensor carries its own).
int64_t vocab_size_option(const Napi::Object& input) {
  if (input.Get("vocabSize").IsUndefined()) return -1;
  const double v = number_option(input, "vocabSize", 0, 1, std::numeric_limits<int32_t>::max());
  if (std::floor(v) != v) fail(ErrorCode::Range, "vocabSize: expected an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

// logits (and, with `with_temperature`, temperature or temperatures) from the input object.
LogitsInput parse_logits(const Napi::Object& input, bool with_temperature) {
  LogitsInput in;
  in.logits = matrix_arg(input.Get("logits"), "logits", DType::F32, vocab_size_option(input), "vocabSize");
  if (!with_temperature) return in;
  const bool has_scalar = !input.Get("temperature").IsUndefined();
  in.temperatures = optional_input_arg(input, "temperatures", DType::F32, in.rows(), in.device(),
                                       "one per row of logits");
  if (has_scalar && in.temperatures)
    fail(ErrorCode::Range, "temperature: pass either temperature (one for every row) or temperatures (one per row), "
                           "not both");
  in.temperature = float_option(input, "temperature", 1.0f, kMinTemperature, kMaxTemperature);
  if (in.temperatures) {
    in.temperatures_host = host_float32(in.temperatures->tensor);
    for (size_t r = 0; r < in.temperatures_host.size(); r++) {
      const float t = in.temperatures_host[r];
      if (!(t >= kMinTemperature && t <= kMaxTemperature))
        fail(ErrorCode::Range, "temperatures: expected every entry in [2^-100, 2^100], got temperatures[" +
                                   std::to_string(r) + "] = " + Napi::Number::New(input.Env(), t).ToString().Utf8Value());
    }
  }
  return in;
}

// targets i32[N] on the logits' device, each in [0, V); returns the arg and fills the validated host copy.
TensorArg parse_targets(const Napi::Object& input, const LogitsInput& in, std::vector<int32_t>& host) {
  TensorArg targets = input_arg(input, "targets", DType::I32, in.rows(), in.device(), "one per row of logits");
  host = checked_indices(targets, "targets", in.vocab(), "V = " + std::to_string(in.vocab()) + ", the vocabulary");
  return targets;
}

// A second [N, V] input shaped like the logits (refLogits).
TensorArg parse_logits_like(const Napi::Object& input, const char* key, const LogitsInput& in) {
  TensorArg arg = matrix_arg(input.Get(key), key, DType::F32, in.vocab(), "vocabSize, the logits' columns");
  if (arg.tensor.shape()[0] != in.rows())
    fail(ErrorCode::Shape, std::string(key) + ": expected " + std::to_string(in.rows()) + " rows like logits, got shape " +
                               arg.tensor.shape_string());
  require_same_device(arg, key, in.device());
  return arg;
}

TensorArg row_input(const Napi::Object& input, const char* key, const LogitsInput& in) {
  return input_arg(input, key, DType::F32, in.rows(), in.device(), "one per row of logits");
}

TensorArg row_output(Napi::Env env, const Napi::Object& out, const char* key, const LogitsInput& in) {
  return output_arg(env, out.Get(key), std::string("out.") + key, in.rows(), DType::F32, in.device(),
                    in.logits.from_handle);
}

// dLogits: a fresh [N, V] buffer, the caller's out.dLogits, or (inPlace: true) the logits themselves.
// Only exactly the logits' memory may be shared; `inputs` must not overlap it at all.
TensorArg parse_d_logits(Napi::Env env, const Napi::Object& input, const Napi::Object& out, const LogitsInput& in,
                         const NamedArgs& inputs) {
  const bool in_place = boolean_option(input, "inPlace", false);
  if (in_place && !out.Get("dLogits").IsUndefined())
    fail(ErrorCode::Range, "inPlace: pass either inPlace: true or out.dLogits, not both");
  TensorArg d_logits = in_place ? in.logits
                                : matrix_output_arg(env, out.Get("dLogits"), "out.dLogits", in.rows(), in.vocab(),
                                                    DType::F32, in.device(), in.logits.from_handle);
  require_disjoint(d_logits, "out.dLogits", in.logits, "logits", true);
  require_outputs_disjoint({{&d_logits, "out.dLogits"}}, inputs);
  return d_logits;
}

// ---- logprobEntropy -------------------------------------------------------------------------------

struct LogprobEntropyCall : KernelCall {
  LogitsInput in;
  TensorArg targets, logp, entropy, lse;
  std::vector<int32_t> targets_host;
  LogprobEntropyArgs args{};

  void execute() override { logprob_entropy(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("logp", output_value(env, logp));
    out.Set("entropy", output_value(env, entropy));
    out.Set("lse", output_value(env, lse));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_logprob_entropy(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "logprobEntropy", "{logits, targets, ...}",
                                    {"logits", "targets", "vocabSize", "temperature", "temperatures", "out"});
  auto call = std::make_unique<LogprobEntropyCall>();
  call->in = parse_logits(input, true);
  call->targets = parse_targets(input, call->in, call->targets_host);
  Napi::Object out = options_object(input.Get("out"), "out", {"logp", "entropy", "lse"});
  call->logp = row_output(info.Env(), out, "logp", call->in);
  call->entropy = row_output(info.Env(), out, "entropy", call->in);
  call->lse = row_output(info.Env(), out, "lse", call->in);
  require_outputs_disjoint({{&call->logp, "out.logp"}, {&call->entropy, "out.entropy"}, {&call->lse, "out.lse"}},
                           {{&call->in.logits, "logits"}, {&call->targets, "targets"},
                            {arg_ptr(call->in.temperatures), "temperatures"}});
  for (const TensorArg* arg : {&call->in.logits, &call->targets, &call->logp, &call->entropy, &call->lse})
    call->hold(*arg);
  call->hold(call->in.temperatures);

  LogprobEntropyArgs& a = call->args;
  a.x = call->in.view();
  a.targets = call->in.device().is_cpu() ? call->targets_host.data() : call->targets.tensor.data_as<const int32_t>();
  a.logp = call->logp.tensor.data_as<float>();
  a.entropy = call->entropy.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  return call;
}

// ---- logprobEntropyBackward -----------------------------------------------------------------------

struct LogprobEntropyBackwardCall : KernelCall {
  LogitsInput in;
  TensorArg targets, g_logp, g_entropy, lse, entropy, d_logits;
  std::vector<int32_t> targets_host;
  LogprobEntropyBackwardArgs args{};

  void execute() override { logprob_entropy_backward(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dLogits", output_value(env, d_logits));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_logprob_entropy_backward(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "logprobEntropyBackward", "{logits, targets, gLogp, gEntropy, lse, entropy, ...}",
                                    {"logits", "targets", "vocabSize", "temperature", "temperatures", "gLogp",
                                     "gEntropy", "lse", "entropy", "inPlace", "out"});
  auto call = std::make_unique<LogprobEntropyBackwardCall>();
  LogitsInput& in = call->in;
  in = parse_logits(input, true);
  call->targets = parse_targets(input, in, call->targets_host);
  call->g_logp = row_input(input, "gLogp", in);
  call->g_entropy = row_input(input, "gEntropy", in);
  call->lse = row_input(input, "lse", in);
  call->entropy = row_input(input, "entropy", in);
  Napi::Object out = options_object(input.Get("out"), "out", {"dLogits"});
  call->d_logits = parse_d_logits(info.Env(), input, out, in,
                                  {{&call->targets, "targets"}, {arg_ptr(in.temperatures), "temperatures"},
                                   {&call->g_logp, "gLogp"}, {&call->g_entropy, "gEntropy"}, {&call->lse, "lse"},
                                   {&call->entropy, "entropy"}});
  for (const TensorArg* arg : {&in.logits, &call->targets, &call->g_logp, &call->g_entropy, &call->lse, &call->entropy,
                               &call->d_logits})
    call->hold(*arg);
  call->hold(in.temperatures);

  LogprobEntropyBackwardArgs& a = call->args;
  a.x = in.view();
  a.targets = in.device().is_cpu() ? call->targets_host.data() : call->targets.tensor.data_as<const int32_t>();
  a.g_logp = call->g_logp.tensor.data_as<const float>();
  a.g_entropy = call->g_entropy.tensor.data_as<const float>();
  a.lse = call->lse.tensor.data_as<const float>();
  a.entropy = call->entropy.tensor.data_as<const float>();
  a.d_logits = call->d_logits.tensor.data_as<float>();
  return call;
}

// ---- crossEntropy ---------------------------------------------------------------------------------

struct CrossEntropyCall : KernelCall {
  LogitsInput in;
  TensorArg targets, d_logits;
  std::optional<TensorArg> mask;
  std::vector<int32_t> targets_host;
  double loss = 0.0;
  int64_t count = 0;
  CrossEntropyArgs args{};

  void execute() override { cross_entropy(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("loss", loss);
    out.Set("dLogits", output_value(env, d_logits));
    out.Set("count", static_cast<double>(count));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_cross_entropy(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "crossEntropy", "{logits, targets, ...}",
                                    {"logits", "targets", "vocabSize", "mask", "inPlace", "out"});
  auto call = std::make_unique<CrossEntropyCall>();
  LogitsInput& in = call->in;
  in = parse_logits(input, false);
  call->targets = parse_targets(input, in, call->targets_host);
  call->mask = optional_input_arg(input, "mask", DType::U8, in.rows(), in.device(), "one per row of logits");
  Napi::Object out = options_object(input.Get("out"), "out", {"dLogits"});
  call->d_logits = parse_d_logits(info.Env(), input, out, in, {{&call->targets, "targets"}, {arg_ptr(call->mask), "mask"}});
  for (const TensorArg* arg : {&in.logits, &call->targets, &call->d_logits}) call->hold(*arg);
  call->hold(call->mask);

  CrossEntropyArgs& a = call->args;
  a.x = in.view();
  a.targets = in.device().is_cpu() ? call->targets_host.data() : call->targets.tensor.data_as<const int32_t>();
  a.mask = call->mask ? call->mask->tensor.data_as<const uint8_t>() : nullptr;
  a.d_logits = call->d_logits.tensor.data_as<float>();
  a.loss = &call->loss;
  a.count = &call->count;
  return call;
}

// ---- klDivergence ---------------------------------------------------------------------------------

struct KlDivergenceCall : KernelCall {
  LogitsInput in;
  TensorArg ref_logits, kl, lse, ref_lse;
  KlDivergenceArgs args{};

  void execute() override { kl_divergence(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("kl", output_value(env, kl));
    out.Set("lse", output_value(env, lse));
    out.Set("refLse", output_value(env, ref_lse));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_kl_divergence(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "klDivergence", "{logits, refLogits, ...}",
                                    {"logits", "refLogits", "vocabSize", "temperature", "temperatures", "out"});
  auto call = std::make_unique<KlDivergenceCall>();
  LogitsInput& in = call->in;
  in = parse_logits(input, true);
  call->ref_logits = parse_logits_like(input, "refLogits", in);
  Napi::Object out = options_object(input.Get("out"), "out", {"kl", "lse", "refLse"});
  call->kl = row_output(info.Env(), out, "kl", in);
  call->lse = row_output(info.Env(), out, "lse", in);
  call->ref_lse = row_output(info.Env(), out, "refLse", in);
  require_outputs_disjoint({{&call->kl, "out.kl"}, {&call->lse, "out.lse"}, {&call->ref_lse, "out.refLse"}},
                           {{&in.logits, "logits"}, {&call->ref_logits, "refLogits"},
                            {arg_ptr(in.temperatures), "temperatures"}});
  for (const TensorArg* arg : {&in.logits, &call->ref_logits, &call->kl, &call->lse, &call->ref_lse}) call->hold(*arg);
  call->hold(in.temperatures);

  KlDivergenceArgs& a = call->args;
  a.x = in.view();
  a.ref_logits = call->ref_logits.tensor.data_as<const float>();
  a.kl = call->kl.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  a.ref_lse = call->ref_lse.tensor.data_as<float>();
  return call;
}

// ---- klDivergenceBackward -------------------------------------------------------------------------

struct KlDivergenceBackwardCall : KernelCall {
  LogitsInput in;
  TensorArg ref_logits, g_kl, lse, ref_lse, kl, d_logits;
  KlDivergenceBackwardArgs args{};

  void execute() override { kl_divergence_backward(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dLogits", output_value(env, d_logits));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_kl_divergence_backward(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "klDivergenceBackward", "{logits, refLogits, gKl, lse, refLse, kl, ...}",
                                    {"logits", "refLogits", "vocabSize", "temperature", "temperatures", "gKl", "lse",
                                     "refLse", "kl", "inPlace", "out"});
  auto call = std::make_unique<KlDivergenceBackwardCall>();
  LogitsInput& in = call->in;
  in = parse_logits(input, true);
  call->ref_logits = parse_logits_like(input, "refLogits", in);
  call->g_kl = row_input(input, "gKl", in);
  call->lse = row_input(input, "lse", in);
  call->ref_lse = row_input(input, "refLse", in);
  call->kl = row_input(input, "kl", in);
  Napi::Object out = options_object(input.Get("out"), "out", {"dLogits"});
  call->d_logits = parse_d_logits(info.Env(), input, out, in,
                                  {{&call->ref_logits, "refLogits"}, {arg_ptr(in.temperatures), "temperatures"},
                                   {&call->g_kl, "gKl"}, {&call->lse, "lse"}, {&call->ref_lse, "refLse"},
                                   {&call->kl, "kl"}});
  for (const TensorArg* arg : {&in.logits, &call->ref_logits, &call->g_kl, &call->lse, &call->ref_lse, &call->kl,
                               &call->d_logits})
    call->hold(*arg);
  call->hold(in.temperatures);

  KlDivergenceBackwardArgs& a = call->args;
  a.x = in.view();
  a.ref_logits = call->ref_logits.tensor.data_as<const float>();
  a.g_kl = call->g_kl.tensor.data_as<const float>();
  a.lse = call->lse.tensor.data_as<const float>();
  a.ref_lse = call->ref_lse.tensor.data_as<const float>();
  a.kl = call->kl.tensor.data_as<const float>();
  a.d_logits = call->d_logits.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_logits(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "logprobEntropy", prepare_logprob_entropy);
  export_kernel(env, exports, "logprobEntropyBackward", prepare_logprob_entropy_backward);
  export_kernel(env, exports, "crossEntropy", prepare_cross_entropy);
  export_kernel(env, exports, "klDivergence", prepare_kl_divergence);
  export_kernel(env, exports, "klDivergenceBackward", prepare_kl_divergence_backward);
}

}  // namespace talaria::addon
