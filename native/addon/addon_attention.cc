// Bindings for the attention family (native/core/kernels/attention.h): attentionForward.
#include "addon_attention.h"

#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include "../core/kernels/attention.h"
#include "addon_tensor.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

constexpr const char* kSizeRule = "an integer in [1, 2^31 - 1]";

// A size option, or -1 when absent (then a Tensor's shape gives it).
int64_t size_option(const Napi::Object& input, const char* key) {
  if (input.Get(key).IsUndefined()) return -1;
  return static_cast<int64_t>(integer_option(input, key, 0, 1, kMaxInt32, kSizeRule));
}

// The packing of q and of k/v: validated host copies of cuSeqlens (and cuSeqlensK, or the same offsets).
struct Packing {
  TensorArg cu_q;
  std::optional<TensorArg> cu_k;
  std::vector<int32_t> host_q, host_k;
};

Packing parse_packing(const Napi::Object& input, int64_t nq, int64_t nk, Device device) {
  Packing p;
  p.cu_q = tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  require_same_device(p.cu_q, "cuSeqlens", device);
  p.host_q = checked_offsets(p.cu_q, "cuSeqlens", nq, "N (the rows of q)");
  p.cu_k = optional_tensor_arg(input.Get("cuSeqlensK"), "cuSeqlensK", DType::I32);
  if (!p.cu_k) {
    if (nk != nq)
      fail(ErrorCode::Shape, "k: expected " + std::to_string(nq) + " rows like q (self-attention), got " +
                                 std::to_string(nk) + "; pass cuSeqlensK for keys packed differently");
    p.host_k = p.host_q;
    return p;
  }
  require_length(*p.cu_k, "cuSeqlensK", p.cu_q.tensor.numel(), "one offset per sequence plus one, like cuSeqlens");
  require_same_device(*p.cu_k, "cuSeqlensK", device);
  p.host_k = checked_offsets(*p.cu_k, "cuSeqlensK", nk, "Nk (the rows of k)");
  return p;
}

struct AttentionForwardCall : KernelCall {
  TensorArg q, k, v, o, lse;
  Packing packing;
  AttentionForwardArgs args{};

  void execute() override { attention_forward(q.tensor.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("o", output_value(env, o));
    out.Set("lse", output_value(env, lse));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_attention_forward(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "attentionForward: expected an object {q, k, v, cuSeqlens, ...}, got " + describe(info[0]));
  Napi::Object input = options_object(info[0], "attentionForward",
                                      {"q", "k", "v", "cuSeqlens", "cuSeqlensK", "numHeads", "numKvHeads", "headDim",
                                       "scale", "causal", "out"});
  auto call = std::make_unique<AttentionForwardCall>();
  const int64_t heads_given = size_option(input, "numHeads"), kv_given = size_option(input, "numKvHeads");
  call->q = rows_arg(input.Get("q"), "q", DType::F32, {heads_given, size_option(input, "headDim")},
                     {"numHeads", "headDim"});
  const Device device = call->q.tensor.device();
  const int64_t nq = call->q.tensor.shape()[0], heads = call->q.tensor.shape()[1], d = call->q.tensor.shape()[2];
  if (!attention_head_dim_supported(d))
    fail(ErrorCode::Shape, "headDim: expected 32, 64 or 128 (the last dimension of q), got " + std::to_string(d));
  // A typed-array k without numKvHeads is plain multi-head attention (Hkv = H).
  const Napi::Value k_value = input.Get("k");
  const int64_t kv_expected = kv_given > 0 ? kv_given : AddonTensor::unwrap(k_value) ? -1 : heads;
  call->k = rows_arg(k_value, "k", DType::F32, {kv_expected, d}, {"numKvHeads", "headDim"});
  require_same_device(call->k, "k", device);
  const int64_t nk = call->k.tensor.shape()[0], kv_heads = call->k.tensor.shape()[1];
  if (heads % kv_heads != 0)
    fail(ErrorCode::Shape, "numKvHeads: the " + std::to_string(heads) + " query heads of q must be a multiple of the " +
                               std::to_string(kv_heads) + " kv heads of k");
  call->v = rows_arg(input.Get("v"), "v", DType::F32, {kv_heads, d}, {"numKvHeads", "headDim"});
  require_length(call->v, "v", call->k.tensor.numel(), "[Nk, Hkv, D] like k");
  require_same_device(call->v, "v", device);
  call->packing = parse_packing(input, nq, nk, device);

  AttentionForwardArgs& a = call->args;
  a.scale = float_option(input, "scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))), 0.0, kFloatMax,
                         false);
  a.causal = boolean_option(input, "causal", true);

  Napi::Object out = options_object(input.Get("out"), "out", {"o", "lse"});
  const bool as_handle = call->q.from_handle;
  if (out.Get("o").IsUndefined()) {
    call->o = new_output(info.Env(), {nq, heads, d}, DType::F32, device, as_handle);
  } else {
    call->o = rows_arg(out.Get("o"), "out.o", DType::F32, {heads, d}, {"numHeads", "headDim"});
    require_length(call->o, "out.o", call->q.tensor.numel(), "[N, H, D] like q");
    require_same_device(call->o, "out.o", device);
  }
  call->lse = out.Get("lse").IsUndefined()
                  ? new_output(info.Env(), {heads, nq}, DType::F32, device, as_handle)
                  : output_arg(info.Env(), out.Get("lse"), "out.lse", heads * nq, DType::F32, device, as_handle);
  Packing& p = call->packing;
  require_outputs_disjoint({{&call->o, "out.o"}, {&call->lse, "out.lse"}},
                           {{&call->q, "q"}, {&call->k, "k"}, {&call->v, "v"}, {&p.cu_q, "cuSeqlens"},
                            {arg_ptr(p.cu_k), "cuSeqlensK"}});
  for (const TensorArg* arg : {&call->q, &call->k, &call->v, &call->o, &call->lse, &p.cu_q}) call->hold(*arg);
  call->hold(p.cu_k);

  // CPU kernels read the validated host copies; device kernels read device memory JS cannot change.
  const bool cpu = device.is_cpu();
  a.q = call->q.tensor.data_as<const float>();
  a.k = call->k.tensor.data_as<const float>();
  a.v = call->v.tensor.data_as<const float>();
  a.cu_seqlens_q = cpu ? p.host_q.data() : p.cu_q.tensor.data_as<const int32_t>();
  a.cu_seqlens_k = cpu ? p.host_k.data() : (p.cu_k ? p.cu_k : p.cu_q)->tensor.data_as<const int32_t>();
  a.num_seqs = static_cast<int64_t>(p.host_q.size()) - 1;
  a.total_q = nq;
  a.total_k = nk;
  a.max_seqlen_q = longest_segment(p.host_q);
  a.heads = static_cast<int>(heads);
  a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = static_cast<int>(d);
  a.o = call->o.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_attention(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "attentionForward", prepare_attention_forward);
}

}  // namespace talaria::addon
