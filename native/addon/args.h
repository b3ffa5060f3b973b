// Argument guards for the bindings (the trust boundary): each resolves one JS value into a checked C++
// value or throws talaria::Error naming the argument, what was expected and what was given.
#pragma once
#include <napi.h>

#include <cfloat>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace talaria::addon {

// A kernel input or output: either a typed array (zero-copy, CPU) or a Tensor handle.
struct TensorArg {
  Tensor tensor;
  bool from_handle = false;  // true when the caller passed a Tensor (so outputs become Tensors)
  // The caller's JS value, held by a persistent reference because a Promise-form kernel returns it from
  // a later callback, after the handle scope of the call is gone (null for outputs the binding allocates).
  // Inputs keep one too: an in-place kernel returns its input (dLogits over the logits).
  std::shared_ptr<Napi::Reference<Napi::Value>> js;
  // JS objects that must stay alive while a kernel uses the memory (handle and/or typed array).
  std::vector<Napi::Value> keep_alive;
};

// Typed array type that holds each dtype.
napi_typedarray_type typed_array_type(DType dtype);
const char* typed_array_name(DType dtype);

// A typed array or Tensor handle of `dtype`, 1-D.
TensorArg tensor_arg(const Napi::Value& value, const std::string& name, DType dtype);
// A 2-D input [rows, cols] (logits [N, V]): a 2-D Tensor, or a typed array of rows * cols elements. Typed
// arrays carry no shape, so they need `cols` (> 0; `cols_name` names the option that gave it, such as
// vocabSize); cols < 0 takes the columns from the Tensor. A Tensor must agree with a given cols.
TensorArg matrix_arg(const Napi::Value& value, const std::string& name, DType dtype, int64_t cols,
                     const std::string& cols_name);
// An input [rows, inner...] (attention's q [N, H, D]): a Tensor of rank 1 + inner.size(), or a typed
// array of rows * prod(inner) elements. inner[i] < 0 takes that size from a Tensor (a typed array then
// fails, naming the option inner_names[i] that would give it); a Tensor must agree with every given size.
// matrix_arg is rows_arg with one inner size.
TensorArg rows_arg(const Napi::Value& value, const std::string& name, DType dtype, const std::vector<int64_t>& inner,
                   const std::vector<std::string>& inner_names);
// A buffer viewed flat (axpby's x and y): a Tensor of any rank >= 1, or a typed array.
TensorArg flat_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype);
// Same, but undefined (or null) gives std::nullopt.
std::optional<TensorArg> optional_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype);

// A kernel input of `length` elements of `dtype` on `device`; `why` explains the length in the error.
TensorArg input_arg(const Napi::Object& input, const char* key, DType dtype, int64_t length, Device device,
                    const std::string& why);
// Same, but an absent (undefined or null) key gives std::nullopt.
std::optional<TensorArg> optional_input_arg(const Napi::Object& input, const char* key, DType dtype, int64_t length,
                                            Device device, const std::string& why);
// The argument or nullptr, for lists of optional arguments (require_outputs_disjoint).
inline const TensorArg* arg_ptr(const std::optional<TensorArg>& arg) { return arg ? &*arg : nullptr; }

// Length checks shared by kernels.
void require_length(const TensorArg& arg, const std::string& name, int64_t expected, const std::string& why);
void require_same_device(const TensorArg& arg, const std::string& name, Device device);

// A persistent reference to `value`, shareable between copies of a TensorArg.
std::shared_ptr<Napi::Reference<Napi::Value>> persistent(const Napi::Value& value);

// Hyperparameters become f32 in the kernels.
constexpr double kFloatMax = FLT_MAX;
// The largest integer a JS number holds exactly, 2^53 - 1 (Number.MAX_SAFE_INTEGER).
constexpr double kMaxSafeInteger = 9007199254740991.0;

// Options objects. `options` may be undefined (all defaults). Unknown keys are rejected so that a typo
// such as `lamda` cannot silently fall back to a default.
Napi::Object options_object(const Napi::Value& value, const std::string& name,
                            std::initializer_list<const char*> known_keys);
// The kernel's single argument, an input object with only `known_keys` (`shape` shows it in the error,
// such as "{logits, targets, ...}"); anything else, arrays and typed arrays included, is a DTYPE error.
Napi::Object input_object(const Napi::CallbackInfo& info, const char* name, const char* shape,
                          std::initializer_list<const char*> known_keys);
double number_option(const Napi::Object& options, const char* key, double fallback, double lo, double hi,
                     bool lo_inclusive = true, bool hi_inclusive = true);
// A hyperparameter the kernels take as f32: the range is checked again after rounding, because values
// legal in f64 can leave it (1 - 1e-9 rounds to 1, 1e-50 to 0, 1e39 to inf).
float float_option(const Napi::Object& options, const char* key, float fallback, double lo, double hi,
                   bool lo_inclusive = true, bool hi_inclusive = true);
// The largest i32, for sizes and ids the kernels hold as int32.
constexpr double kMaxInt32 = 2147483647.0;
// A required or optional integer option in [lo, hi]; `fallback` when absent (required: fallback < 0).
// `what` describes the legal values for the message, such as "an integer in [1, 2^31 - 1]".
double integer_option(const Napi::Object& input, const char* key, double fallback, double lo, double hi,
                      const char* what);
// A size option (an integer in [1, 2^31 - 1]), or -1 when absent (then a Tensor's shape gives the size).
int64_t size_option(const Napi::Object& input, const char* key);
bool boolean_option(const Napi::Object& options, const char* key, bool fallback);
// A string option that must be one of `choices` (name -> value); undefined gives `fallback`.
int enum_option(const Napi::Object& options, const char* key, int fallback,
                std::initializer_list<std::pair<const char*, int>> choices);

Device parse_device(const Napi::Value& value, const std::string& name);
DType parse_dtype(const Napi::Value& value, const std::string& name);
std::vector<int64_t> parse_shape(const Napi::Value& value, const std::string& name);

// Rejects an output whose memory overlaps an input's (kernels may read inputs after writing outputs).
// `allow_identical` permits exactly the same range (documented in-place operation).
void require_disjoint(const TensorArg& out, const std::string& out_name, const TensorArg& in,
                      const std::string& in_name, bool allow_identical = false);

// require_disjoint for every output against every input and against the other outputs. Null entries
// (absent optional arguments) are skipped.
using NamedArgs = std::vector<std::pair<const TensorArg*, const char*>>;
void require_outputs_disjoint(const NamedArgs& outputs, const NamedArgs& inputs);

// The caller's `out` buffer for an output (f32[length] on `device`), or a fresh one (see new_output).
TensorArg output_arg(Napi::Env env, const Napi::Value& out, const std::string& name, int64_t length, DType dtype,
                     Device device, bool as_handle);

// The caller's `out` buffer for a [rows, cols] output, or a fresh one ([rows, cols] when it is a Tensor).
TensorArg matrix_output_arg(Napi::Env env, const Napi::Value& out, const std::string& name, int64_t rows, int64_t cols,
                            DType dtype, Device device, bool as_handle);

// A fresh f32/i32/u8 output shaped like the inputs' kind: a typed array (wrapped zero-copy) when
// `as_handle` is false, else a device tensor that becomes a Tensor handle in the result.
TensorArg new_output(Napi::Env env, int64_t length, DType dtype, Device device, bool as_handle);
TensorArg new_output(Napi::Env env, const std::vector<int64_t>& shape, DType dtype, Device device, bool as_handle);
// The JS value to return for an output made by new_output.
Napi::Value output_value(Napi::Env env, const TensorArg& output);

// An offsets array (cu_seqlens, group or prompt offsets): length >= 1, starts at 0, never decreases and
// ends at `total`. Returns the validated host copy: CPU kernels read that copy, so JS changing the
// array while a Promise-form kernel runs cannot send the kernel out of bounds.
std::vector<int32_t> checked_offsets(const TensorArg& offsets, const std::string& name, int64_t total,
                                     const std::string& total_name);
// The longest segment of validated offsets.
int64_t longest_segment(const std::vector<int32_t>& offsets);

// Copies a (small) tensor to host memory, for validating index arrays (or per-row values) that live on a device.
std::vector<int32_t> host_int32(const Tensor& tensor);
std::vector<float> host_float32(const Tensor& tensor);

// An index array (targets): every entry in [0, limit). Returns the validated host copy, which CPU kernels
// read (as checked_offsets).
std::vector<int32_t> checked_indices(const TensorArg& indices, const std::string& name, int64_t limit,
                                     const std::string& limit_name);

}  // namespace talaria::addon
