// Argument guards for the bindings (the trust boundary): each resolves one JS value into a checked C++
// value or throws talaria::Error naming the argument, what was expected and what was given.
#pragma once
#include <napi.h>

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
  // An output's JS value, held by a persistent reference because a Promise-form kernel returns it from
  // a later callback, after the handle scope of the call is gone. Null for inputs (a reference per input
  // would cost every call ~0.2 us) and for outputs allocated as device tensors.
  std::shared_ptr<Napi::Reference<Napi::Value>> js;
  // JS objects that must stay alive while a kernel uses the memory (handle and/or typed array).
  std::vector<Napi::Value> keep_alive;
};

// Typed array type that holds each dtype.
napi_typedarray_type typed_array_type(DType dtype);
const char* typed_array_name(DType dtype);

// A typed array or Tensor handle of `dtype`, 1-D.
TensorArg tensor_arg(const Napi::Value& value, const std::string& name, DType dtype);
// Same, but undefined (or null) gives std::nullopt.
std::optional<TensorArg> optional_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype);

// Length checks shared by kernels.
void require_length(const TensorArg& arg, const std::string& name, int64_t expected, const std::string& why);
void require_same_device(const TensorArg& arg, const std::string& name, Device device);

// A persistent reference to `value`, shareable between copies of a TensorArg.
std::shared_ptr<Napi::Reference<Napi::Value>> persistent(const Napi::Value& value);

// Options objects. `options` may be undefined (all defaults). Unknown keys are rejected so that a typo
// such as `lamda` cannot silently fall back to a default.
Napi::Object options_object(const Napi::Value& value, const std::string& name,
                            std::initializer_list<const char*> known_keys);
double number_option(const Napi::Object& options, const char* key, double fallback, double lo, double hi,
                     bool lo_inclusive = true, bool hi_inclusive = true);
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

// A fresh f32/i32/u8 output shaped like the inputs' kind: a typed array (wrapped zero-copy) when
// `as_handle` is false, else a device tensor that becomes a Tensor handle in the result.
TensorArg new_output(Napi::Env env, int64_t length, DType dtype, Device device, bool as_handle);
// The JS value to return for an output made by new_output.
Napi::Value output_value(Napi::Env env, const TensorArg& output);

// An offsets array (cu_seqlens, group or prompt offsets): length >= 1, starts at 0, never decreases and
// ends at `total`. Returns the validated host copy: CPU kernels read that copy, so JS changing the
// array while a Promise-form kernel runs cannot send the kernel out of bounds.
std::vector<int32_t> checked_offsets(const TensorArg& offsets, const std::string& name, int64_t total,
                                     const std::string& total_name);
// The longest segment of validated offsets.
int64_t longest_segment(const std::vector<int32_t>& offsets);

// Copies a (small) tensor to host memory, for validating index arrays that live on a device.
std::vector<int32_t> host_int32(const Tensor& tensor);

}  // namespace talaria::addon
