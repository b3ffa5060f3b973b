// Bindings for the sampler (native/core/kernels/sampling.h): sample and sampleAsync.
#include "addon_sampling.h"

#include <cfloat>
#include <cmath>

#include "../core/kernels/sampling.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

struct SampleCall : KernelCall {
  TensorArg logits, tokens, logp, logp_plain;
  std::optional<TensorArg> temperatures, history, history_offsets;
  // Validated host copies, which the CPU kernel reads (JS cannot change them while a Promise runs).
  std::vector<float> temperatures_host;
  std::vector<int32_t> history_host, offsets_host;
  SampleArgs args{};

  void execute() override { sample(logits.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("tokens", output_value(env, tokens));
    out.Set("logp", output_value(env, logp));
    out.Set("logpPlain", output_value(env, logp_plain));
    return out;
  }
};

void parse_temperature(const Napi::Object& input, SampleCall& call, int64_t rows, Device device) {
  const Napi::Value value = input.Get("temperature");
  call.args.temperature = 1.0f;
  if (value.IsUndefined() || value.IsNumber()) {
    call.args.temperature = float_option(input, "temperature", 1.0f, 0.0, kFloatMax, false);
    return;
  }
  call.temperatures = input_arg(input, "temperature", DType::F32, rows, device, "one per row of logits");
  call.temperatures_host.resize(static_cast<size_t>(rows));
  device_copy(call.temperatures_host.data(), Device::cpu(), call.temperatures->tensor.data(), device,
              call.temperatures_host.size() * sizeof(float));
  for (size_t i = 0; i < call.temperatures_host.size(); i++) {
    const float t = call.temperatures_host[i];
    if (!(t > 0.0f && t <= FLT_MAX))
      fail(ErrorCode::Range, "temperature: expected every per-row temperature in (0, " + std::to_string(FLT_MAX) +
                                 "], got " + std::to_string(t) + " at row " + std::to_string(i));
  }
}

void parse_history(const Napi::Object& input, SampleCall& call, int64_t rows, int64_t vocab, Device device) {
  call.history = optional_tensor_arg(input.Get("history"), "history", DType::I32);
  call.history_offsets = optional_tensor_arg(input.Get("historyOffsets"), "historyOffsets", DType::I32);
  if (!call.history && !call.history_offsets) return;
  if (!call.history) fail(ErrorCode::Shape, "history: historyOffsets was given without history (token ids i32[H])");
  if (!call.history_offsets)
    fail(ErrorCode::Shape, "historyOffsets: history was given without historyOffsets (i32[N+1], one slice per row)");
  require_same_device(*call.history, "history", device);
  require_same_device(*call.history_offsets, "historyOffsets", device);
  require_length(*call.history_offsets, "historyOffsets", rows + 1, "one more than the rows of logits");
  const int64_t h = call.history->tensor.numel();
  call.offsets_host = checked_offsets(*call.history_offsets, "historyOffsets", h, "H (the length of history)");
  call.history_host = host_int32(call.history->tensor);
  for (size_t j = 0; j < call.history_host.size(); j++)
    if (call.history_host[j] < 0 || call.history_host[j] >= vocab)
      fail(ErrorCode::Range, "history: expected token ids in [0, " + std::to_string(vocab) + "), got " +
                                 std::to_string(call.history_host[j]) + " at index " + std::to_string(j));
}

std::unique_ptr<KernelCall> prepare_sample(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "sample: expected an object {logits, seed, ...}, got " + describe(info[0]));
  Napi::Object input = options_object(
      info[0], "sample",
      {"logits", "vocabSize", "seed", "offset", "mode", "temperature", "topK", "topP", "minP", "history",
       "historyOffsets", "repetitionPenalty", "presencePenalty", "frequencyPenalty"});
  auto call = std::make_unique<SampleCall>();
  SampleArgs& a = call->args;
  const int64_t vocab_size =
      input.Get("vocabSize").IsUndefined() ? -1
                                           : static_cast<int64_t>(integer_option(input, "vocabSize", 0, 0, kMaxInt32,
                                                                                 "an integer in [1, 2^31 - 1]"));
  call->logits = matrix_arg(input.Get("logits"), "logits", DType::F32, vocab_size, "vocabSize");
  const Device device = call->logits.tensor.device();
  a.rows = call->logits.tensor.shape()[0];
  a.vocab = call->logits.tensor.shape()[1];
  if (a.vocab > kMaxInt32)
    fail(ErrorCode::Shape, "logits: token ids are i32, so at most 2^31 - 1 columns, got " + std::to_string(a.vocab));
  a.seed = static_cast<uint64_t>(integer_option(input, "seed", -1, 0, kMaxSafeInteger, "an integer in [0, 2^53)"));
  a.offset = static_cast<uint64_t>(integer_option(input, "offset", 0, 0, kMaxSafeInteger, "an integer in [0, 2^53)"));
  a.mode = static_cast<SampleMode>(enum_option(input, "mode", static_cast<int>(SampleMode::Sample),
                                               {{"sample", static_cast<int>(SampleMode::Sample)},
                                                {"greedy", static_cast<int>(SampleMode::Greedy)}}));
  parse_temperature(input, *call, a.rows, device);
  a.top_k = static_cast<int64_t>(integer_option(input, "topK", 0, 0, kMaxInt32, "an integer >= 0 (0 is off)"));
  a.top_p = float_option(input, "topP", 1.0f, 0.0, 1.0, false, true);
  a.min_p = float_option(input, "minP", 0.0f, 0.0, 1.0, true, false);
  a.penalties.repetition = float_option(input, "repetitionPenalty", 1.0f, 0.0, kFloatMax, false);
  a.penalties.presence = float_option(input, "presencePenalty", 0.0f, -kFloatMax, kFloatMax);
  a.penalties.frequency = float_option(input, "frequencyPenalty", 0.0f, -kFloatMax, kFloatMax);
  parse_history(input, *call, a.rows, a.vocab, device);

  const bool as_handle = call->logits.from_handle;
  call->tokens = new_output(info.Env(), a.rows, DType::I32, device, as_handle);
  call->logp = new_output(info.Env(), a.rows, DType::F32, device, as_handle);
  call->logp_plain = new_output(info.Env(), a.rows, DType::F32, device, as_handle);
  for (const TensorArg* arg : {&call->logits, &call->tokens, &call->logp, &call->logp_plain}) call->hold(*arg);
  for (const auto* arg : {&call->temperatures, &call->history, &call->history_offsets}) call->hold(*arg);

  a.logits = call->logits.tensor.data_as<const float>();
  const bool cpu = device.is_cpu();
  if (call->temperatures)
    a.temperatures = cpu ? call->temperatures_host.data() : call->temperatures->tensor.data_as<const float>();
  if (call->history) {
    a.history = cpu ? call->history_host.data() : call->history->tensor.data_as<const int32_t>();
    a.history_offsets = cpu ? call->offsets_host.data() : call->history_offsets->tensor.data_as<const int32_t>();
  }
  a.tokens = call->tokens.tensor.data_as<int32_t>();
  a.logp = call->logp.tensor.data_as<float>();
  a.logp_plain = call->logp_plain.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_sampling(Napi::Env env, Napi::Object exports) { export_kernel(env, exports, "sample", prepare_sample); }

}  // namespace talaria::addon
