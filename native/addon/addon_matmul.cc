// Binding for the matrix multiply (native/core/kernels/matmul.h): matmul({a, b, transA, transB, alpha, beta,
// c, m, n, k}) computes C = alpha op(A) op(B) + beta C and returns C.
//
// a and b are 2-D Tensors, or Float32Arrays with the dimension that gives their columns: k for a (m when
// transA) and n for b (none when transB: its columns are K). Every dimension given must agree with the
// shapes. C is a fresh [M, N] output, or the caller's c (required when beta != 0), which must not overlap
// a or b: the kernel reads A and B after it has written parts of C.
#include "addon_matmul.h"

#include <cmath>
#include <limits>
#include <string>

#include "../core/kernels/matmul.h"
#include "errors.h"
#include "kernel_call.h"

namespace talaria::addon {
namespace {

// A dimension option m, n or k: an integer >= 1, or -1 when absent.
int64_t dim_option(const Napi::Object& input, const char* key) {
  if (input.Get(key).IsUndefined()) return -1;
  const double v = number_option(input, key, 0, 1, std::numeric_limits<int32_t>::max());
  if (std::floor(v) != v) fail(ErrorCode::Range, std::string(key) + ": expected an integer, got " + std::to_string(v));
  return static_cast<int64_t>(v);
}

// A dimension taken from a shape, checked against the option that may also give it.
int64_t agree(int64_t from_shape, int64_t option, const char* option_name, const TensorArg& arg, const char* name,
              const char* role) {
  if (from_shape < 1)
    fail(ErrorCode::Shape, std::string(name) + ": expected at least 1 " + role + ", got shape " + arg.tensor.shape_string());
  if (option >= 0 && option != from_shape)
    fail(ErrorCode::Shape, std::string(name) + ": expected " + option_name + " = " + std::to_string(option) + " " + role +
                               ", got shape " + arg.tensor.shape_string());
  return from_shape;
}

struct MatmulCall : KernelCall {
  TensorArg a, b, c;
  MatmulArgs args{};

  void execute() override { matmul(a.tensor.device(), args); }
  Napi::Value result(Napi::Env env) override { return output_value(env, c); }
};

std::unique_ptr<KernelCall> prepare_matmul(const Napi::CallbackInfo& info) {
  Napi::Object input = input_object(info, "matmul", "{a, b, ...}",
                                    {"a", "b", "transA", "transB", "alpha", "beta", "c", "m", "n", "k"});
  auto call = std::make_unique<MatmulCall>();
  MatmulArgs& args = call->args;
  args.trans_a = boolean_option(input, "transA", false);
  args.trans_b = boolean_option(input, "transB", false);
  args.alpha = float_option(input, "alpha", 1.0f, -kFloatMax, kFloatMax);
  args.beta = float_option(input, "beta", 0.0f, -kFloatMax, kFloatMax);
  const int64_t m_opt = dim_option(input, "m"), n_opt = dim_option(input, "n"), k_opt = dim_option(input, "k");

  // A is [M, K], or [K, M] when transA.
  call->a = matrix_arg(input.Get("a"), "a", DType::F32, args.trans_a ? m_opt : k_opt, args.trans_a ? "m" : "k");
  const auto& sa = call->a.tensor.shape();
  args.m = agree(args.trans_a ? sa[1] : sa[0], m_opt, "m", call->a, "a", args.trans_a ? "column (M)" : "row (M)");
  args.k = agree(args.trans_a ? sa[0] : sa[1], k_opt, "k", call->a, "a", args.trans_a ? "row (K)" : "column (K)");
  const Device device = call->a.tensor.device();

  // B is [K, N], or [N, K] when transB; its K must be A's.
  call->b = matrix_arg(input.Get("b"), "b", DType::F32, args.trans_b ? args.k : n_opt,
                       args.trans_b ? "k, the columns of op(A)" : "n");
  require_same_device(call->b, "b", device);
  const auto& sb = call->b.tensor.shape();
  agree(args.trans_b ? sb[1] : sb[0], args.k, "K", call->b, "b", args.trans_b ? "columns (K, like op(A))" : "rows (K, like op(A))");
  args.n = agree(args.trans_b ? sb[0] : sb[1], n_opt, "n", call->b, "b", args.trans_b ? "row (N)" : "column (N)");

  if (args.beta != 0.0f && input.Get("c").IsUndefined())
    fail(ErrorCode::Range, "c: beta = " + std::to_string(args.beta) + " reads C; pass c, or leave beta at 0");
  call->c = matrix_output_arg(info.Env(), input.Get("c"), "c", args.m, args.n, DType::F32, device, call->a.from_handle);
  require_outputs_disjoint({{&call->c, "c"}}, {{&call->a, "a"}, {&call->b, "b"}});
  for (const TensorArg* arg : {&call->a, &call->b, &call->c}) call->hold(*arg);

  args.a = call->a.tensor.data_as<const float>();
  args.b = call->b.tensor.data_as<const float>();
  args.c = call->c.tensor.data_as<float>();
  return call;
}

}  // namespace

void export_matmul(Napi::Env env, Napi::Object exports) { export_kernel(env, exports, "matmul", prepare_matmul); }

}  // namespace talaria::addon
