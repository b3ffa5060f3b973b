// Bindings for the decoder-layer kernels (native/core/kernels/layers.h):
//   rmsnorm({x, weight, eps?, out?: {y?, rstd?}}) -> {y, rstd}
//   rmsnormBackward({x, weight, rstd, dy, dWeight?, accumulate?, out?: {dx?}}) -> {dx, dWeight}
//   swiglu({gateUp, intermediateSize?, out?}) -> h;  swigluBackward({gateUp, dh, intermediateSize?, out?}) -> dGateUp
//   embedding({ids, table, dim?, out?}) -> rows;  embeddingBackward({ids, dOut, dTable, dim?}) -> dTable (in place)
//   axpby({x, y, alpha?, beta?}) -> y (in place)
// Matrices are 2-D Tensors, or Float32Arrays whose column count comes from another argument (weight's length)
// or an option (intermediateSize, dim). Outputs take the kind and device of the main input (x, gateUp, table).
// Outputs never overlap inputs, except axpby's y, which may be x itself. Ids are checked on a host copy
// before any kernel runs, and CPU kernels read that copy.
#include "addon_layers.h"

#include <string>

#include "../core/kernels/layers.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

// rmsnorm's dWeight tiles columns over CUDA's grid y (at most 65535 tiles of 256 columns).
constexpr int64_t kMaxNormDim = 65535LL * 256;

// A [rows, cols] input with the rows and device of `like` (dy like x).
TensorArg matrix_like(const Napi::Object& input, const char* key, int64_t cols, const std::string& cols_name,
                      const TensorArg& like, const std::string& like_name) {
  TensorArg arg = matrix_arg(input.Get(key), key, DType::F32, cols, cols_name);
  if (arg.tensor.shape()[0] != like.tensor.shape()[0])
    fail(ErrorCode::Shape, std::string(key) + ": expected " + std::to_string(like.tensor.shape()[0]) + " rows like " +
                               like_name + ", got shape " + arg.tensor.shape_string());
  require_same_device(arg, key, like.tensor.device());
  return arg;
}

// weight f32[d] (d >= 1) and x [N, d] on weight's device: the inputs both rmsnorm calls share.
struct NormInputs {
  TensorArg x, weight;
  int64_t rows() const { return x.tensor.shape()[0]; }
  int64_t dim() const { return weight.tensor.numel(); }
  Device device() const { return x.tensor.device(); }
};

NormInputs parse_norm_inputs(const Napi::Object& input) {
  NormInputs in;
  in.weight = tensor_arg(input.Get("weight"), "weight", DType::F32);
  const int64_t dim = in.weight.tensor.numel();
  if (dim < 1 || dim > kMaxNormDim)
    fail(ErrorCode::Shape, "weight: expected length d in [1, " + std::to_string(kMaxNormDim) + "] (one per column of x), got " +
                               std::to_string(dim));
  in.x = matrix_arg(input.Get("x"), "x", DType::F32, dim, "d, the length of weight");
  require_same_device(in.weight, "weight", in.device());
  return in;
}

// ---- rmsnorm ---------------------------------------------------------------------------------------------

struct RmsnormCall : KernelCall {
  NormInputs in;
  TensorArg y, rstd;
  RmsnormArgs args{};

  void execute() override { rmsnorm(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("y", output_value(env, y));
    out.Set("rstd", output_value(env, rstd));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_rmsnorm(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "rmsnorm", "{x, weight, ...}", {"x", "weight", "eps", "out"});
  auto call = std::make_unique<RmsnormCall>();
  NormInputs& in = call->in;
  in = parse_norm_inputs(input);
  const float eps = float_option(input, "eps", 1e-6f, 0, kFloatMax, false, true);
  Napi::Object out = options_object(input.Get("out"), "out", {"y", "rstd"});
  const bool as_handle = in.x.from_handle;
  call->y = matrix_output_arg(info.Env(), out.Get("y"), "out.y", in.rows(), in.dim(), DType::F32, in.device(), as_handle);
  call->rstd = output_arg(info.Env(), out.Get("rstd"), "out.rstd", in.rows(), DType::F32, in.device(), as_handle);
  require_outputs_disjoint({{&call->y, "out.y"}, {&call->rstd, "out.rstd"}}, {{&in.x, "x"}, {&in.weight, "weight"}});
  for (const TensorArg* arg : {&in.x, &in.weight, &call->y, &call->rstd}) call->hold(*arg);
  call->args = {in.x.tensor.data_as<const float>(), in.weight.tensor.data_as<const float>(), call->y.tensor.data_as<float>(),
                call->rstd.tensor.data_as<float>(), in.rows(), in.dim(), eps};
  return call;
}

// ---- rmsnormBackward -------------------------------------------------------------------------------------

struct RmsnormBackwardCall : KernelCall {
  NormInputs in;
  TensorArg rstd, dy, dx, d_weight;
  RmsnormBackwardArgs args{};

  void execute() override { rmsnorm_backward(in.device(), args); }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("dx", output_value(env, dx));
    out.Set("dWeight", output_value(env, d_weight));
    return out;
  }
};

std::unique_ptr<KernelCall> prepare_rmsnorm_backward(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "rmsnormBackward", "{x, weight, rstd, dy, ...}",
                                    {"x", "weight", "rstd", "dy", "dWeight", "accumulate", "out"});
  auto call = std::make_unique<RmsnormBackwardCall>();
  NormInputs& in = call->in;
  in = parse_norm_inputs(input);
  call->rstd = input_arg(input, "rstd", DType::F32, in.rows(), in.device(), "one per row of x");
  call->dy = matrix_like(input, "dy", in.dim(), "d, the length of weight", in.x, "x");
  const bool accumulate = boolean_option(input, "accumulate", false);
  Napi::Object out = options_object(input.Get("out"), "out", {"dx"});
  if (accumulate && out.Get("dx").IsUndefined())
    fail(ErrorCode::Range, "out.dx: accumulate: true adds the gradient into out.dx; pass the buffer to add to");
  const bool as_handle = in.x.from_handle;
  call->dx = matrix_output_arg(info.Env(), out.Get("dx"), "out.dx", in.rows(), in.dim(), DType::F32, in.device(), as_handle);
  std::optional<TensorArg> given = optional_input_arg(input, "dWeight", DType::F32, in.dim(), in.device(),
                                                      "d, one per column of x");
  call->d_weight = given ? *given : new_output(info.Env(), in.dim(), DType::F32, in.device(), as_handle);
  require_outputs_disjoint({{&call->dx, "out.dx"}, {&call->d_weight, "dWeight"}},
                           {{&in.x, "x"}, {&in.weight, "weight"}, {&call->rstd, "rstd"}, {&call->dy, "dy"}});
  for (const TensorArg* arg : {&in.x, &in.weight, &call->rstd, &call->dy, &call->dx, &call->d_weight}) call->hold(*arg);
  RmsnormBackwardArgs& a = call->args;
  a.x = in.x.tensor.data_as<const float>();
  a.weight = in.weight.tensor.data_as<const float>();
  a.rstd = call->rstd.tensor.data_as<const float>();
  a.dy = call->dy.tensor.data_as<const float>();
  a.dx = call->dx.tensor.data_as<float>();
  a.d_weight = call->d_weight.tensor.data_as<float>();
  a.rows = in.rows(), a.dim = in.dim();
  a.accumulate_dx = accumulate;
  a.accumulate_d_weight = given.has_value();
  return call;
}

// ---- swiglu and swigluBackward ---------------------------------------------------------------------------

// gateUp [N, 2F]: F from intermediateSize, or from a Tensor's (even) column count.
TensorArg parse_gate_up(const Napi::Object& input, int64_t& hidden) {
  const int64_t given = size_option(input, "intermediateSize");
  TensorArg gate_up = matrix_arg(input.Get("gateUp"), "gateUp", DType::F32, given > 0 ? 2 * given : -1,
                                 "2 * intermediateSize (gate and up side by side)");
  const int64_t cols = gate_up.tensor.shape()[1];
  if (cols % 2 != 0)
    fail(ErrorCode::Shape, "gateUp: expected an even number of columns 2F (gate in [0, F), up in [F, 2F)), got shape " +
                               gate_up.tensor.shape_string());
  hidden = cols / 2;
  return gate_up;
}

struct SwigluCall : KernelCall {
  TensorArg gate_up, dh, out;
  bool backward = false;
  SwigluArgs forward_args{};
  SwigluBackwardArgs backward_args{};

  void execute() override {
    if (backward) swiglu_backward(gate_up.tensor.device(), backward_args);
    else swiglu(gate_up.tensor.device(), forward_args);
  }
  Napi::Value result(Napi::Env env) override { return output_value(env, out); }
};

std::unique_ptr<KernelCall> prepare_swiglu(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "swiglu", "{gateUp, ...}", {"gateUp", "intermediateSize", "out"});
  auto call = std::make_unique<SwigluCall>();
  int64_t hidden = 0;
  call->gate_up = parse_gate_up(input, hidden);
  const int64_t rows = call->gate_up.tensor.shape()[0];
  call->out = matrix_output_arg(info.Env(), input.Get("out"), "out", rows, hidden, DType::F32, call->gate_up.tensor.device(),
                                call->gate_up.from_handle);
  require_disjoint(call->out, "out", call->gate_up, "gateUp");
  call->hold(call->gate_up);
  call->hold(call->out);
  call->forward_args = {call->gate_up.tensor.data_as<const float>(), call->out.tensor.data_as<float>(), rows, hidden};
  return call;
}

std::unique_ptr<KernelCall> prepare_swiglu_backward(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "swigluBackward", "{gateUp, dh, ...}", {"gateUp", "dh", "intermediateSize", "out"});
  auto call = std::make_unique<SwigluCall>();
  call->backward = true;
  int64_t hidden = 0;
  call->gate_up = parse_gate_up(input, hidden);
  call->dh = matrix_like(input, "dh", hidden, "F, half the columns of gateUp", call->gate_up, "gateUp");
  const int64_t rows = call->gate_up.tensor.shape()[0];
  call->out = matrix_output_arg(info.Env(), input.Get("out"), "out", rows, 2 * hidden, DType::F32,
                                call->gate_up.tensor.device(), call->gate_up.from_handle);
  require_outputs_disjoint({{&call->out, "out"}}, {{&call->gate_up, "gateUp"}, {&call->dh, "dh"}});
  for (const TensorArg* arg : {&call->gate_up, &call->dh, &call->out}) call->hold(*arg);
  call->backward_args = {call->gate_up.tensor.data_as<const float>(), call->dh.tensor.data_as<const float>(),
                         call->out.tensor.data_as<float>(), rows, hidden};
  return call;
}

// ---- embedding and embeddingBackward ---------------------------------------------------------------------

// The [V, d] table (or dTable) and ids i32[N] on its device, every id one of its rows, checked on a host copy.
struct TableAndIds {
  TensorArg table, ids;
  std::vector<int32_t> ids_host;
  int64_t rows() const { return ids.tensor.numel(); }
  int64_t vocab() const { return table.tensor.shape()[0]; }
  int64_t dim() const { return table.tensor.shape()[1]; }
  Device device() const { return table.tensor.device(); }
  // CPU kernels read the validated copy: JS cannot change it while a Promise-form call runs.
  const int32_t* kernel_ids() const { return device().is_cpu() ? ids_host.data() : ids.tensor.data_as<const int32_t>(); }
};

TableAndIds parse_table_and_ids(const Napi::Object& input, const char* table_key) {
  TableAndIds in;
  in.table = matrix_arg(input.Get(table_key), table_key, DType::F32, size_option(input, "dim"), "dim");
  in.ids = tensor_arg(input.Get("ids"), "ids", DType::I32);
  require_same_device(in.ids, "ids", in.device());
  in.ids_host = checked_indices(in.ids, "ids", in.vocab(), "V = " + std::to_string(in.vocab()) + ", the rows of " + table_key);
  return in;
}

struct EmbeddingCall : KernelCall {
  TableAndIds in;
  TensorArg out;
  EmbeddingArgs args{};

  void execute() override { embedding(in.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, out); }
};

std::unique_ptr<KernelCall> prepare_embedding(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "embedding", "{ids, table, ...}", {"ids", "table", "dim", "out"});
  auto call = std::make_unique<EmbeddingCall>();
  TableAndIds& in = call->in;
  in = parse_table_and_ids(input, "table");
  call->out = matrix_output_arg(info.Env(), input.Get("out"), "out", in.rows(), in.dim(), DType::F32, in.device(),
                                in.table.from_handle);
  require_outputs_disjoint({{&call->out, "out"}}, {{&in.table, "table"}, {&in.ids, "ids"}});
  for (const TensorArg* arg : {&in.ids, &in.table, &call->out}) call->hold(*arg);
  call->args = {in.kernel_ids(), in.table.tensor.data_as<const float>(), call->out.tensor.data_as<float>(), in.rows(),
                in.vocab(), in.dim()};
  return call;
}

struct EmbeddingBackwardCall : KernelCall {
  TableAndIds in;
  TensorArg d_out;
  EmbeddingBackwardArgs args{};

  void execute() override { embedding_backward(in.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, in.table); }
};

std::unique_ptr<KernelCall> prepare_embedding_backward(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "embeddingBackward", "{ids, dOut, dTable, ...}", {"ids", "dOut", "dTable", "dim"});
  auto call = std::make_unique<EmbeddingBackwardCall>();
  TableAndIds& in = call->in;
  in = parse_table_and_ids(input, "dTable");
  call->d_out = matrix_arg(input.Get("dOut"), "dOut", DType::F32, in.dim(), "d, the columns of dTable");
  if (call->d_out.tensor.shape()[0] != in.rows())
    fail(ErrorCode::Shape, "dOut: expected " + std::to_string(in.rows()) + " rows (one per id), got shape " +
                               call->d_out.tensor.shape_string());
  require_same_device(call->d_out, "dOut", in.device());
  require_outputs_disjoint({{&in.table, "dTable"}}, {{&call->d_out, "dOut"}, {&in.ids, "ids"}});
  for (const TensorArg* arg : {&in.ids, &call->d_out, &in.table}) call->hold(*arg);
  call->args = {in.kernel_ids(), call->d_out.tensor.data_as<const float>(), in.table.tensor.data_as<float>(), in.rows(),
                in.vocab(), in.dim()};
  return call;
}

// ---- axpby -----------------------------------------------------------------------------------------------

struct AxpbyCall : KernelCall {
  TensorArg x, y;
  AxpbyArgs args{};

  void execute() override { axpby(y.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, y); }
};

std::unique_ptr<KernelCall> prepare_axpby(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "axpby", "{x, y, alpha?, beta?}", {"x", "y", "alpha", "beta"});
  auto call = std::make_unique<AxpbyCall>();
  call->y = flat_tensor_arg(input.Get("y"), "y", DType::F32);
  call->x = flat_tensor_arg(input.Get("x"), "x", DType::F32);
  require_length(call->x, "x", call->y.tensor.numel(), "as many elements as y");
  require_same_device(call->x, "x", call->y.tensor.device());
  require_disjoint(call->y, "y", call->x, "x", true);
  call->hold(call->x);
  call->hold(call->y);
  AxpbyArgs& a = call->args;
  a.alpha = float_option(input, "alpha", 1.0f, -kFloatMax, kFloatMax);
  a.beta = float_option(input, "beta", 1.0f, -kFloatMax, kFloatMax);
  a.x = call->x.tensor.data_as<const float>();
  a.y = call->y.tensor.data_as<float>();
  a.n = call->y.tensor.numel();
  return call;
}

}  // namespace

void export_layers(Napi::Env env, Napi::Object exports) {
  export_kernel(env, exports, "rmsnorm", prepare_rmsnorm);
  export_kernel(env, exports, "rmsnormBackward", prepare_rmsnorm_backward);
  export_kernel(env, exports, "swiglu", prepare_swiglu);
  export_kernel(env, exports, "swigluBackward", prepare_swiglu_backward);
  export_kernel(env, exports, "embedding", prepare_embedding);
  export_kernel(env, exports, "embeddingBackward", prepare_embedding_backward);
  export_kernel(env, exports, "axpby", prepare_axpby);
}

}  // namespace talaria::addon
