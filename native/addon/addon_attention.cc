// Bindings for the attention family (native/core/kernels/attention.h): attentionForward, attentionBackward,
// rope, kvCacheAppend and attentionDecode.
#include "addon_attention.h"

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/kernels/attention.h"
#include "addon_tensor.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

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

// q, k, v, their packing, scale and causal: what the forward and the backward both take. Fills every
// field of `a` except o and lse.
struct AttentionInputs {
  TensorArg q, k, v;
  Packing packing;
  Device device() const { return q.tensor.device(); }
  void hold_into(KernelCall& call) const {
    for (const TensorArg* arg : {&q, &k, &v, &packing.cu_q}) call.hold(*arg);
    call.hold(packing.cu_k);
  }
  NamedArgs named() const {
    return {{&q, "q"}, {&k, "k"}, {&v, "v"}, {&packing.cu_q, "cuSeqlens"}, {arg_ptr(packing.cu_k), "cuSeqlensK"}};
  }
};

void parse_inputs(const Napi::Object& input, AttentionInputs& in, AttentionForwardArgs& a) {
  const int64_t heads_given = size_option(input, "numHeads"), kv_given = size_option(input, "numKvHeads");
  in.q = rows_arg(input.Get("q"), "q", DType::F32, {heads_given, size_option(input, "headDim")},
                  {"numHeads", "headDim"});
  const Device device = in.device();
  const int64_t nq = in.q.tensor.shape()[0], heads = in.q.tensor.shape()[1], d = in.q.tensor.shape()[2];
  if (!attention_head_dim_supported(d))
    fail(ErrorCode::Shape, "headDim: expected 32, 64 or 128 (the last dimension of q), got " + std::to_string(d));
  // A typed-array k without numKvHeads is plain multi-head attention (Hkv = H).
  const Napi::Value k_value = input.Get("k");
  const int64_t kv_expected = kv_given > 0 ? kv_given : AddonTensor::unwrap(k_value) ? -1 : heads;
  in.k = rows_arg(k_value, "k", DType::F32, {kv_expected, d}, {"numKvHeads", "headDim"});
  require_same_device(in.k, "k", device);
  const int64_t nk = in.k.tensor.shape()[0], kv_heads = in.k.tensor.shape()[1];
  if (heads % kv_heads != 0)
    fail(ErrorCode::Shape, "numKvHeads: the " + std::to_string(heads) + " query heads of q must be a multiple of the " +
                               std::to_string(kv_heads) + " kv heads of k");
  in.v = rows_arg(input.Get("v"), "v", DType::F32, {kv_heads, d}, {"numKvHeads", "headDim"});
  require_length(in.v, "v", in.k.tensor.numel(), "[Nk, Hkv, D] like k");
  require_same_device(in.v, "v", device);
  Packing& p = in.packing;
  p = parse_packing(input, nq, nk, device);

  a.scale = float_option(input, "scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))), 0.0, kFloatMax,
                         false);
  a.causal = boolean_option(input, "causal", true);
  // CPU kernels read the validated host copies; device kernels read device memory JS cannot change.
  const bool cpu = device.is_cpu();
  a.q = in.q.tensor.data_as<const float>();
  a.k = in.k.tensor.data_as<const float>();
  a.v = in.v.tensor.data_as<const float>();
  a.cu_seqlens_q = cpu ? p.host_q.data() : p.cu_q.tensor.data_as<const int32_t>();
  a.cu_seqlens_k = cpu ? p.host_k.data() : (p.cu_k ? p.cu_k : p.cu_q)->tensor.data_as<const int32_t>();
  a.num_seqs = static_cast<int64_t>(p.host_q.size()) - 1;
  a.total_q = nq;
  a.total_k = nk;
  a.max_seqlen_q = longest_segment(p.host_q);
  a.max_seqlen_k = longest_segment(p.host_k);
  a.heads = static_cast<int>(heads);
  a.kv_heads = static_cast<int>(kv_heads);
  a.head_dim = static_cast<int>(d);
}

// An f32 tensor shaped like `like` ([rows, heads, D]) on its device: the caller's buffer `value`, checked,
// or a fresh output.
TensorArg shaped_like(Napi::Env env, const Napi::Value& value, const std::string& name, const TensorArg& like,
                      const std::string& like_name, bool as_handle) {
  const std::vector<int64_t>& shape = like.tensor.shape();
  if (value.IsUndefined()) return new_output(env, shape, DType::F32, like.tensor.device(), as_handle);
  TensorArg arg = rows_arg(value, name, DType::F32, {shape[1], shape[2]}, {"the heads of " + like_name, "headDim"});
  require_length(arg, name, like.tensor.numel(), "shaped like " + like_name);
  require_same_device(arg, name, like.tensor.device());
  return arg;
}

// lse f32 [H, N]: a 2-D Tensor or a typed array (1-D when N = 0, which has no columns to name).
TensorArg lse_input(const Napi::Value& value, const std::string& name, const AttentionForwardArgs& a, Device device) {
  TensorArg arg = a.total_q > 0 ? matrix_arg(value, name, DType::F32, a.total_q, "N (the rows of q)")
                                : tensor_arg(value, name, DType::F32);
  require_length(arg, name, static_cast<int64_t>(a.heads) * a.total_q, "[H, N]: one per head and query");
  require_same_device(arg, name, device);
  return arg;
}

// ---- attentionForward -----------------------------------------------------------------------------------

struct AttentionForwardCall : KernelCall {
  AttentionInputs in;
  TensorArg o, lse;
  AttentionForwardArgs args{};

  void execute() override { attention_forward(in.device(), args); }

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
  AttentionForwardArgs& a = call->args;
  parse_inputs(input, call->in, a);
  Napi::Object out = options_object(input.Get("out"), "out", {"o", "lse"});
  const bool as_handle = call->in.q.from_handle;
  call->o = shaped_like(info.Env(), out.Get("o"), "out.o", call->in.q, "q", as_handle);
  call->lse = out.Get("lse").IsUndefined()
                  ? new_output(info.Env(), {a.heads, a.total_q}, DType::F32, call->in.device(), as_handle)
                  : lse_input(out.Get("lse"), "out.lse", a, call->in.device());
  require_outputs_disjoint({{&call->o, "out.o"}, {&call->lse, "out.lse"}}, call->in.named());
  call->in.hold_into(*call);
  call->hold(call->o);
  call->hold(call->lse);
  a.o = call->o.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  return call;
}

// ---- attentionBackward ----------------------------------------------------------------------------------

struct AttentionBackwardCall : KernelCall {
  AttentionInputs in;
  TensorArg o, lse, d_o, dq, dk, dv;
  AttentionBackwardArgs args{};

  void execute() override { attention_backward(in.device(), args); }

  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dq", output_value(env, dq));
    out.Set("dk", output_value(env, dk));
    out.Set("dv", output_value(env, dv));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_attention_backward(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "attentionBackward: expected an object {dO, q, k, v, o, lse, cuSeqlens, ...}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(info[0], "attentionBackward",
                                      {"dO", "q", "k", "v", "o", "lse", "cuSeqlens", "cuSeqlensK", "numHeads",
                                       "numKvHeads", "headDim", "scale", "causal", "out"});
  auto call = std::make_unique<AttentionBackwardCall>();
  AttentionForwardArgs& a = call->args.fwd;
  parse_inputs(input, call->in, a);
  const Device device = call->in.device();
  const TensorArg& q = call->in.q;
  auto like_q = [&](const char* key) {
    TensorArg arg = rows_arg(input.Get(key), key, DType::F32, {a.heads, a.head_dim}, {"numHeads", "headDim"});
    require_length(arg, key, q.tensor.numel(), "[N, H, D] like q");
    require_same_device(arg, key, device);
    return arg;
  };
  call->d_o = like_q("dO");
  call->o = like_q("o");
  call->lse = lse_input(input.Get("lse"), "lse", a, device);
  Napi::Object out = options_object(input.Get("out"), "out", {"dq", "dk", "dv"});
  const bool as_handle = q.from_handle;
  call->dq = shaped_like(info.Env(), out.Get("dq"), "out.dq", q, "q", as_handle);
  call->dk = shaped_like(info.Env(), out.Get("dk"), "out.dk", call->in.k, "k", as_handle);
  call->dv = shaped_like(info.Env(), out.Get("dv"), "out.dv", call->in.k, "k", as_handle);
  NamedArgs inputs = call->in.named();
  inputs.insert(inputs.end(), {{&call->d_o, "dO"}, {&call->o, "o"}, {&call->lse, "lse"}});
  require_outputs_disjoint({{&call->dq, "out.dq"}, {&call->dk, "out.dk"}, {&call->dv, "out.dv"}}, inputs);
  call->in.hold_into(*call);
  for (const TensorArg* arg : {&call->o, &call->lse, &call->d_o, &call->dq, &call->dk, &call->dv}) call->hold(*arg);
  // The backward only reads the forward's o and lse (AttentionBackwardArgs).
  a.o = call->o.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  call->args.d_o = call->d_o.tensor.data_as<const float>();
  call->args.dq = call->dq.tensor.data_as<float>();
  call->args.dk = call->dk.tensor.data_as<float>();
  call->args.dv = call->dv.tensor.data_as<float>();
  return call;
}

// ---- rope -----------------------------------------------------------------------------------------------

struct RopeCall : KernelCall {
  TensorArg x, cu, y;
  std::optional<TensorArg> offsets;
  std::vector<int32_t> cu_host, offsets_host;
  RopeArgs args{};
  void execute() override { rope(x.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, y); }
};

// rope({x, cuSeqlens, positionOffsets?, theta?, numHeads?, headDim?, backward?, out?}): x [N, H, D] rotated
// by each token's position within its sequence, plus the sequence's entry of positionOffsets i32[B] when
// given; `backward` applies the inverse rotation (the gradient). out may be x.
std::unique_ptr<KernelCall> prepare_rope(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject()) fail(ErrorCode::DType, "rope: expected an object {x, cuSeqlens, ...}, got " + describe(info[0]));
  Napi::Object input = options_object(info[0], "rope", {"x", "cuSeqlens", "positionOffsets", "theta", "numHeads",
                                                          "headDim", "backward", "out"});
  auto call = std::make_unique<RopeCall>();
  call->x = rows_arg(input.Get("x"), "x", DType::F32, {size_option(input, "numHeads"), size_option(input, "headDim")},
                     {"numHeads", "headDim"});
  const Device device = call->x.tensor.device();
  const std::vector<int64_t>& shape = call->x.tensor.shape();
  if (shape[2] % 2 != 0)
    fail(ErrorCode::Shape, "headDim: expected an even head dim (rotations pair i with i + D/2), got " +
                               std::to_string(shape[2]));
  call->cu = tensor_arg(input.Get("cuSeqlens"), "cuSeqlens", DType::I32);
  require_same_device(call->cu, "cuSeqlens", device);
  call->cu_host = checked_offsets(call->cu, "cuSeqlens", shape[0], "N (the rows of x)");
  const int64_t num_seqs = static_cast<int64_t>(call->cu_host.size()) - 1;
  call->offsets = optional_input_arg(input, "positionOffsets", DType::I32, num_seqs, device,
                                     "one offset per sequence (cuSeqlens.length - 1)");
  if (call->offsets) {
    call->offsets_host = host_int32(call->offsets->tensor);
    for (int64_t b = 0; b < num_seqs; b++) {
      // Every position, offset + (t - cuSeqlens[b]) up to offset + seqlen - 1, must fit an i32; the bound
      // keeps offset + seqlen itself (the next chunk's offset) representable too.
      const int64_t seqlen = call->cu_host[b + 1] - call->cu_host[b];
      const int64_t offset = call->offsets_host[b];
      if (offset < 0 || offset + seqlen > static_cast<int64_t>(kMaxInt32))
        fail(ErrorCode::Range, "positionOffsets[" + std::to_string(b) + "]: expected an offset in [0, 2^31 - 1 - " +
                                   std::to_string(seqlen) + "] (sequence " + std::to_string(b) + " has " +
                                   std::to_string(seqlen) + " tokens and its positions must fit an i32), got " +
                                   std::to_string(offset));
    }
  }
  RopeArgs& a = call->args;
  a.theta = number_option(input, "theta", 10000.0, 1.0, kFloatMax, false);
  a.inverse = boolean_option(input, "backward", false);
  call->y = shaped_like(info.Env(), input.Get("out"), "out", call->x, "x", call->x.from_handle);
  require_disjoint(call->y, "out", call->x, "x", true);
  require_disjoint(call->y, "out", call->cu, "cuSeqlens");
  if (call->offsets) require_disjoint(call->y, "out", *call->offsets, "positionOffsets");
  for (const TensorArg* arg : {&call->x, &call->cu, &call->y}) call->hold(*arg);
  call->hold(call->offsets);
  a.x = call->x.tensor.data_as<const float>();
  a.y = call->y.tensor.data_as<float>();
  a.cu_seqlens = device.is_cpu() ? call->cu_host.data() : call->cu.tensor.data_as<const int32_t>();
  a.num_seqs = num_seqs;
  a.total = shape[0];
  a.max_seqlen = longest_segment(call->cu_host);
  a.heads = static_cast<int>(shape[1]);
  a.head_dim = static_cast<int>(shape[2]);
  if (call->offsets)  // the CPU reads the validated copy (as cu_seqlens), CUDA the device tensor
    a.position_offsets = device.is_cpu() ? call->offsets_host.data() : call->offsets->tensor.data_as<const int32_t>();
  return call;
}

// ---- KV cache: kvCacheAppend and attentionDecode ----------------------------------------------------------

// The cache pair [B, Lmax, Hkv, D] and its lengths i32[B], validated (0 <= length <= Lmax) into a host copy.
struct KvCache {
  TensorArg k, v, seqlens;
  std::vector<int32_t> seqlens_host;
  int64_t batch = 0, max_len = 0, kv_heads = 0, head_dim = 0;
};

KvCache parse_cache(const Napi::Object& input, int64_t kv_heads, int64_t head_dim) {
  KvCache c;
  c.k = rows_arg(input.Get("cacheK"), "cacheK", DType::F32, {size_option(input, "maxLen"), kv_heads, head_dim},
                 {"maxLen", "numKvHeads", "headDim"});
  const std::vector<int64_t>& shape = c.k.tensor.shape();
  c.batch = shape[0], c.max_len = shape[1], c.kv_heads = shape[2], c.head_dim = shape[3];
  if (!attention_head_dim_supported(c.head_dim))
    fail(ErrorCode::Shape, "headDim: expected 32, 64 or 128, got " + std::to_string(c.head_dim));
  c.v = rows_arg(input.Get("cacheV"), "cacheV", DType::F32, {c.max_len, c.kv_heads, c.head_dim},
                 {"maxLen", "numKvHeads", "headDim"});
  require_length(c.v, "cacheV", c.k.tensor.numel(), "[B, Lmax, Hkv, D] like cacheK");
  require_same_device(c.v, "cacheV", c.k.tensor.device());
  c.seqlens = input_arg(input, "cacheSeqlens", DType::I32, c.batch, c.k.tensor.device(), "one length per sequence");
  c.seqlens_host = host_int32(c.seqlens.tensor);
  for (int64_t b = 0; b < c.batch; b++)
    if (c.seqlens_host[b] < 0 || c.seqlens_host[b] > c.max_len)
      fail(ErrorCode::Range, "cacheSeqlens: expected lengths in [0, " + std::to_string(c.max_len) + "] (maxLen), got " +
                                 std::to_string(c.seqlens_host[b]) + " at index " + std::to_string(b));
  return c;
}

struct KvCacheAppendCall : KernelCall {
  KvCache cache;
  TensorArg k, v, cu;
  std::vector<int32_t> cu_host;
  KvCacheAppendArgs args{};
  void execute() override {
    kv_cache_append(cache.k.tensor.device(), args);
    // The CPU kernel grew the validated copy (JS cannot move the writes out of bounds); publish it.
    if (cache.k.tensor.device().is_cpu())
      std::memcpy(cache.seqlens.tensor.data(), cache.seqlens_host.data(), sizeof(int32_t) * cache.seqlens_host.size());
  }
  Napi::Value result(Napi::Env env) override { return output_value(env, cache.seqlens); }
};

// kvCacheAppend({cacheK, cacheV, cacheSeqlens, k, v, cuSeqlens, ...}): appends each sequence's new rows.
std::unique_ptr<KernelCall> prepare_kv_cache_append(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "kvCacheAppend: expected an object {cacheK, cacheV, cacheSeqlens, k, v, cuSeqlens}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(info[0], "kvCacheAppend", {"cacheK", "cacheV", "cacheSeqlens", "k", "v", "cuSeqlens",
                                                                  "maxLen", "numKvHeads", "headDim"});
  auto call = std::make_unique<KvCacheAppendCall>();
  KvCache& c = call->cache;
  c = parse_cache(input, size_option(input, "numKvHeads"), size_option(input, "headDim"));
  const Device device = c.k.tensor.device();
  call->k = rows_arg(input.Get("k"), "k", DType::F32, {c.kv_heads, c.head_dim}, {"numKvHeads", "headDim"});
  require_same_device(call->k, "k", device);
  call->v = rows_arg(input.Get("v"), "v", DType::F32, {c.kv_heads, c.head_dim}, {"numKvHeads", "headDim"});
  require_length(call->v, "v", call->k.tensor.numel(), "[N, Hkv, D] like k");
  require_same_device(call->v, "v", device);
  call->cu = input_arg(input, "cuSeqlens", DType::I32, c.batch + 1, device, "B + 1 offsets, B from cacheK");
  call->cu_host = checked_offsets(call->cu, "cuSeqlens", call->k.tensor.shape()[0], "N (the rows of k)");
  for (int64_t b = 0; b < c.batch; b++) {
    const int64_t grown = static_cast<int64_t>(c.seqlens_host[b]) + call->cu_host[b + 1] - call->cu_host[b];
    if (grown > c.max_len)
      fail(ErrorCode::Range, "k: sequence " + std::to_string(b) + " would hold " + std::to_string(grown) +
                                 " tokens, more than maxLen = " + std::to_string(c.max_len) + " (cacheK's second dimension)");
  }
  // The cache is written in place: it must not overlap the new rows or the offsets, nor itself.
  require_outputs_disjoint({{&c.k, "cacheK"}, {&c.v, "cacheV"}, {&c.seqlens, "cacheSeqlens"}},
                           {{&call->k, "k"}, {&call->v, "v"}, {&call->cu, "cuSeqlens"}});
  for (const TensorArg* arg : {&c.k, &c.v, &c.seqlens, &call->k, &call->v, &call->cu}) call->hold(*arg);
  const bool cpu = device.is_cpu();
  call->args = {c.k.tensor.data_as<float>(), c.v.tensor.data_as<float>(),
                cpu ? c.seqlens_host.data() : c.seqlens.tensor.data_as<int32_t>(), call->k.tensor.data_as<const float>(),
                call->v.tensor.data_as<const float>(), cpu ? call->cu_host.data() : call->cu.tensor.data_as<const int32_t>(),
                c.batch, c.max_len, call->k.tensor.shape()[0], static_cast<int>(c.kv_heads), static_cast<int>(c.head_dim)};
  return call;
}

struct AttentionDecodeCall : KernelCall {
  KvCache cache;
  TensorArg q, o, lse;
  AttentionDecodeArgs args{};
  void execute() override { attention_decode(q.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("o", output_value(env, o));
    out.Set("lse", output_value(env, lse));
    return out;
  }
};

// attentionDecode({q [B, H, D], cacheK, cacheV, cacheSeqlens, scale?, out?}): one query per sequence
// against its cached keys.
std::unique_ptr<KernelCall> prepare_attention_decode(const Napi::CallbackInfo& info) {
  if (!info[0].IsObject())
    fail(ErrorCode::DType, "attentionDecode: expected an object {q, cacheK, cacheV, cacheSeqlens, ...}, got " +
                               describe(info[0]));
  Napi::Object input = options_object(info[0], "attentionDecode", {"q", "cacheK", "cacheV", "cacheSeqlens", "scale",
                                                                    "maxLen", "numHeads", "numKvHeads", "headDim", "out"});
  auto call = std::make_unique<AttentionDecodeCall>();
  call->q = rows_arg(input.Get("q"), "q", DType::F32, {size_option(input, "numHeads"), size_option(input, "headDim")},
                     {"numHeads", "headDim"});
  const int64_t heads = call->q.tensor.shape()[1], d = call->q.tensor.shape()[2];
  KvCache& c = call->cache;
  c = parse_cache(input, size_option(input, "numKvHeads"), d);
  const Device device = call->q.tensor.device();
  require_same_device(c.k, "cacheK", device);
  if (call->q.tensor.shape()[0] != c.batch)
    fail(ErrorCode::Shape, "q: expected one query per cached sequence, " + std::to_string(c.batch) + " rows (cacheK's B), got " +
                               std::to_string(call->q.tensor.shape()[0]));
  if (heads % c.kv_heads != 0)
    fail(ErrorCode::Shape, "numKvHeads: the " + std::to_string(heads) + " query heads of q must be a multiple of the " +
                               std::to_string(c.kv_heads) + " kv heads of cacheK");
  AttentionDecodeArgs& a = call->args;
  a.scale = float_option(input, "scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))), 0.0, kFloatMax,
                         false);
  Napi::Object out = options_object(input.Get("out"), "out", {"o", "lse"});
  const bool as_handle = call->q.from_handle;
  call->o = shaped_like(info.Env(), out.Get("o"), "out.o", call->q, "q", as_handle);
  call->lse = out.Get("lse").IsUndefined() ? new_output(info.Env(), {heads, c.batch}, DType::F32, device, as_handle)
                                           : output_arg(info.Env(), out.Get("lse"), "out.lse", heads * c.batch, DType::F32,
                                                        device, as_handle);
  require_outputs_disjoint({{&call->o, "out.o"}, {&call->lse, "out.lse"}},
                           {{&call->q, "q"}, {&c.k, "cacheK"}, {&c.v, "cacheV"}, {&c.seqlens, "cacheSeqlens"}});
  for (const TensorArg* arg : {&call->q, &c.k, &c.v, &c.seqlens, &call->o, &call->lse}) call->hold(*arg);
  a.q = call->q.tensor.data_as<const float>();
  a.cache_k = c.k.tensor.data_as<const float>();
  a.cache_v = c.v.tensor.data_as<const float>();
  a.cache_seqlens = device.is_cpu() ? c.seqlens_host.data() : c.seqlens.tensor.data_as<const int32_t>();
  a.batch = c.batch, a.max_len = c.max_len;
  a.max_seqlen = 0;
  for (int32_t len : c.seqlens_host) a.max_seqlen = std::max<int64_t>(a.max_seqlen, len);
  a.heads = static_cast<int>(heads), a.kv_heads = static_cast<int>(c.kv_heads), a.head_dim = static_cast<int>(d);
  a.o = call->o.tensor.data_as<float>();
  a.lse = call->lse.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_attention(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "attentionForward", prepare_attention_forward);
  export_kernel(env, exports, "attentionBackward", prepare_attention_backward);
  export_kernel(env, exports, "rope", prepare_rope);
  export_kernel(env, exports, "kvCacheAppend", prepare_kv_cache_append);
  export_kernel(env, exports, "attentionDecode", prepare_attention_decode);
}

}  // namespace talaria::addon
