#include "args.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "addon_tensor.h"
#include "errors.h"

namespace talaria::addon {

napi_typedarray_type typed_array_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return napi_float32_array;
    case DType::I32: return napi_int32_array;
    case DType::U8: return napi_uint8_array;
  }
  return napi_float32_array;
}

const char* typed_array_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "Float32Array";
    case DType::I32: return "Int32Array";
    case DType::U8: return "Uint8Array";
  }
  return "?";
}

static std::string expected_kind(DType dtype) {
  return std::string("a ") + typed_array_name(dtype) + " or a Tensor of dtype " + dtype_name(dtype);
}

// A typed array or a Tensor of 1 + inner.size() dimensions. A typed array has no shape: it is viewed as
// 1-D when `inner` is empty, else as [length / prod(inner), inner...] (every inner size > 0).
static TensorArg ranked_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype,
                                   const std::vector<int64_t>& inner) {
  const int64_t rank = 1 + static_cast<int64_t>(inner.size());
  TensorArg arg;
  if (AddonTensor* handle = AddonTensor::unwrap(value)) {
    const Tensor& tensor = handle->tensor(name);
    if (tensor.dtype() != dtype)
      fail(ErrorCode::DType, name + ": expected " + expected_kind(dtype) + ", got a " +
                                 dtype_name(tensor.dtype()) + " Tensor");
    if (tensor.dim() != rank)
      fail(ErrorCode::Shape, name + ": expected a " + std::to_string(rank) + "-D tensor, got shape " +
                                 tensor.shape_string());
    arg.tensor = tensor;
    arg.from_handle = true;
    arg.js = persistent(value);
    arg.keep_alive.push_back(value);
    if (!handle->backing().IsEmpty()) arg.keep_alive.push_back(handle->backing());
    return arg;
  }
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != typed_array_type(dtype))
    fail(ErrorCode::DType, name + ": expected " + expected_kind(dtype) + ", got " + describe(value));
  auto array = value.As<Napi::TypedArray>();
  uint8_t* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  const int64_t length = static_cast<int64_t>(array.ElementLength());
  int64_t row = 1;
  for (int64_t size : inner) row *= size;
  if (length % row != 0)
    fail(ErrorCode::Shape, name + ": expected rows of " + std::to_string(row) + " elements, got a length of " +
                               std::to_string(length) + ", which is not a multiple of " + std::to_string(row));
  std::vector<int64_t> shape{length / row};
  shape.insert(shape.end(), inner.begin(), inner.end());
  arg.tensor = Tensor::borrow(data, shape, dtype, Device::cpu());
  arg.js = persistent(value);
  arg.keep_alive.push_back(value);
  return arg;
}

TensorArg tensor_arg(const Napi::Value& value, const std::string& name, DType dtype) {
  return ranked_tensor_arg(value, name, dtype, {});
}

TensorArg rows_arg(const Napi::Value& value, const std::string& name, DType dtype, const std::vector<int64_t>& inner,
                   const std::vector<std::string>& inner_names) {
  const bool is_handle = AddonTensor::unwrap(value) != nullptr;
  const std::string rank = std::to_string(1 + inner.size()) + "-D Tensor";
  for (size_t i = 0; i < inner.size(); i++) {
    if (!is_handle && inner[i] < 0)
      fail(ErrorCode::Shape, name + ": a typed array has no shape; pass " + inner_names[i] + " or a " + rank);
    if (inner[i] == 0) fail(ErrorCode::Shape, inner_names[i] + ": expected at least 1, got 0");
  }
  TensorArg arg = ranked_tensor_arg(value, name, dtype, inner);
  for (size_t i = 0; i < inner.size(); i++) {
    const int64_t got = arg.tensor.shape()[i + 1];
    if (got == 0 || (inner[i] > 0 && got != inner[i]))
      fail(ErrorCode::Shape, name + ": expected " + (inner[i] > 0 ? std::to_string(inner[i]) : "at least 1") + " (" +
                                 inner_names[i] + ") in dimension " + std::to_string(i + 1) + ", got shape " +
                                 arg.tensor.shape_string());
  }
  return arg;
}

TensorArg matrix_arg(const Napi::Value& value, const std::string& name, DType dtype, int64_t cols,
                     const std::string& cols_name) {
  return rows_arg(value, name, dtype, {cols}, {cols_name});
}

TensorArg flat_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype) {
  if (AddonTensor* handle = AddonTensor::unwrap(value)) {
    const std::vector<int64_t>& shape = handle->tensor(name).shape();
    if (!shape.empty()) return ranked_tensor_arg(value, name, dtype, std::vector<int64_t>(shape.begin() + 1, shape.end()));
  }
  return tensor_arg(value, name, dtype);
}

std::optional<TensorArg> optional_tensor_arg(const Napi::Value& value, const std::string& name, DType dtype) {
  if (value.IsUndefined() || value.IsNull()) return std::nullopt;
  return tensor_arg(value, name, dtype);
}

void require_length(const TensorArg& arg, const std::string& name, int64_t expected, const std::string& why) {
  if (arg.tensor.numel() != expected)
    fail(ErrorCode::Shape, name + ": expected length " + std::to_string(expected) + " (" + why + "), got " +
                               std::to_string(arg.tensor.numel()));
}

void require_same_device(const TensorArg& arg, const std::string& name, Device device) {
  if (arg.tensor.device() != device)
    fail(ErrorCode::Device, name + ": expected data on " + device.name() + " like the other inputs, got " +
                                arg.tensor.device().name() +
                                (arg.from_handle ? "" : " (typed arrays live on the cpu)"));
}

Napi::Object options_object(const Napi::Value& value, const std::string& name,
                            std::initializer_list<const char*> known_keys) {
  if (value.IsUndefined()) return Napi::Object::New(value.Env());
  if (!value.IsObject() || value.IsArray() || value.IsTypedArray() || value.IsFunction())
    fail(ErrorCode::DType, name + ": expected an options object, got " + describe(value));
  Napi::Object options = value.As<Napi::Object>();
  Napi::Array keys = options.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); i++) {
    std::string key = keys.Get(i).ToString().Utf8Value();
    bool known = false;
    for (const char* k : known_keys) known = known || key == k;
    if (!known) {
      std::string list;
      for (const char* k : known_keys) list += (list.empty() ? "" : ", ") + std::string(k);
      fail(ErrorCode::Range, name + ": unknown option '" + key + "' (expected one of: " + list + ")");
    }
  }
  return options;
}

TensorArg input_arg(const Napi::Object& input, const char* key, DType dtype, int64_t length, Device device,
                    const std::string& why) {
  TensorArg arg = tensor_arg(input.Get(key), key, dtype);
  require_length(arg, key, length, why);
  require_same_device(arg, key, device);
  return arg;
}

std::optional<TensorArg> optional_input_arg(const Napi::Object& input, const char* key, DType dtype, int64_t length,
                                            Device device, const std::string& why) {
  std::optional<TensorArg> arg = optional_tensor_arg(input.Get(key), key, dtype);
  if (arg) {
    require_length(*arg, key, length, why);
    require_same_device(*arg, key, device);
  }
  return arg;
}

namespace {

// Throws RANGE unless `x` lies in the interval; `given` is the caller's value, for the message, and `note`
// says what happened to it on the way to `x` (empty when nothing did).
void require_in_interval(const Napi::Object& options, const char* key, double x, const Napi::Value& given, double lo,
                         double hi, bool lo_inclusive, bool hi_inclusive, const std::string& note) {
  const bool above_lo = lo_inclusive ? x >= lo : x > lo;
  const bool below_hi = hi_inclusive ? x <= hi : x < hi;
  if (above_lo && below_hi) return;  // written so that NaN fails
  auto show = [&](double v) { return Napi::Number::New(options.Env(), v).ToString().Utf8Value(); };
  fail(ErrorCode::Range, std::string(key) + ": expected a number in " + (lo_inclusive ? "[" : "(") + show(lo) + ", " +
                             show(hi) + (hi_inclusive ? "]" : ")") + note + ", got " + given.ToString().Utf8Value() +
                             (note.empty() ? "" : " (" + show(x) + " in f32)"));
}

Napi::Value number_value(const Napi::Object& options, const char* key) {
  Napi::Value value = options.Get(key);
  if (!value.IsUndefined() && !value.IsNumber())
    fail(ErrorCode::DType, std::string(key) + ": expected a number, got " + describe(value));
  return value;
}

}  // namespace

Napi::Object input_object(const Napi::CallbackInfo& info, const char* name, const char* shape,
                          std::initializer_list<const char*> known_keys) {
  if (!info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray())
    fail(ErrorCode::DType, std::string(name) + ": expected an object " + shape + ", got " + describe(info[0]));
  return options_object(info[0], name, known_keys);
}

double number_option(const Napi::Object& options, const char* key, double fallback, double lo, double hi,
                     bool lo_inclusive, bool hi_inclusive) {
  Napi::Value value = number_value(options, key);
  if (value.IsUndefined()) return fallback;
  const double x = value.As<Napi::Number>().DoubleValue();
  require_in_interval(options, key, x, value, lo, hi, lo_inclusive, hi_inclusive, "");
  return x;
}

float float_option(const Napi::Object& options, const char* key, float fallback, double lo, double hi,
                   bool lo_inclusive, bool hi_inclusive) {
  Napi::Value value = number_value(options, key);
  if (value.IsUndefined()) return fallback;
  const double x = value.As<Napi::Number>().DoubleValue();
  require_in_interval(options, key, x, value, lo, hi, lo_inclusive, hi_inclusive, "");
  const float rounded = static_cast<float>(x);
  require_in_interval(options, key, rounded, value, lo, hi, lo_inclusive, hi_inclusive, " after rounding to f32");
  return rounded;
}

double integer_option(const Napi::Object& input, const char* key, double fallback, double lo, double hi,
                      const char* what) {
  if (fallback < 0 && input.Get(key).IsUndefined())
    fail(ErrorCode::DType, std::string(key) + ": expected " + what + ", got undefined");
  const double x = number_option(input, key, fallback, lo, hi);
  if (std::floor(x) != x)
    fail(ErrorCode::Range, std::string(key) + ": expected " + what + ", got " + input.Get(key).ToString().Utf8Value());
  return x;
}

int64_t size_option(const Napi::Object& input, const char* key) {
  if (input.Get(key).IsUndefined()) return -1;
  return static_cast<int64_t>(integer_option(input, key, 0, 1, kMaxInt32, "an integer in [1, 2^31 - 1]"));
}

bool boolean_option(const Napi::Object& options, const char* key, bool fallback) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) fail(ErrorCode::DType, std::string(key) + ": expected a boolean, got " + describe(value));
  return value.As<Napi::Boolean>();
}

int enum_option(const Napi::Object& options, const char* key, int fallback,
                std::initializer_list<std::pair<const char*, int>> choices) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  std::string expected;
  for (const auto& [name, unused] : choices) expected += (expected.empty() ? "'" : ", '") + std::string(name) + "'";
  if (!value.IsString()) fail(ErrorCode::DType, std::string(key) + ": expected one of " + expected + ", got " + describe(value));
  const std::string given = value.As<Napi::String>().Utf8Value();
  for (const auto& [name, choice] : choices)
    if (given == name) return choice;
  fail(ErrorCode::Range, std::string(key) + ": expected one of " + expected + ", got '" + given + "'");
}

Device parse_device(const Napi::Value& value, const std::string& name) {
  if (value.IsUndefined()) return Device::cpu();
  if (!value.IsString())
    fail(ErrorCode::Device, name + ": expected a device string ('cpu', 'cuda' or 'cuda:N'), got " + describe(value));
  std::string s = value.As<Napi::String>().Utf8Value();
  if (s == "cpu") return Device::cpu();
  if (s == "cuda") return Device::cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 8 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return Device::cuda(std::stoi(s.substr(5)));
  fail(ErrorCode::Device, name + ": unknown device '" + s + "' (expected 'cpu', 'cuda' or 'cuda:N')");
}

DType parse_dtype(const Napi::Value& value, const std::string& name) {
  std::string s = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (s == "f32") return DType::F32;
  if (s == "i32") return DType::I32;
  if (s == "u8") return DType::U8;
  fail(ErrorCode::DType, name + ": expected 'f32', 'i32' or 'u8', got " +
                             (value.IsString() ? "'" + s + "'" : describe(value)));
}

std::vector<int64_t> parse_shape(const Napi::Value& value, const std::string& name) {
  if (!value.IsArray()) fail(ErrorCode::Shape, name + ": expected an array of sizes, got " + describe(value));
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value size = array.Get(i);
    double d = size.IsNumber() ? size.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0 && std::floor(d) == d))
      fail(ErrorCode::Shape, name + ": sizes must be non-negative integers, got " + describe(size) + " at index " +
                                 std::to_string(i));
    shape.push_back(static_cast<int64_t>(d));
  }
  shape_numel(shape);  // rejects overflow
  return shape;
}

TensorArg new_output(Napi::Env env, int64_t length, DType dtype, Device device, bool as_handle) {
  return new_output(env, std::vector<int64_t>{length}, dtype, device, as_handle);
}

TensorArg new_output(Napi::Env env, const std::vector<int64_t>& shape, DType dtype, Device device, bool as_handle) {
  TensorArg out;
  out.from_handle = as_handle;
  if (as_handle) {
    out.tensor = Tensor::empty(shape, dtype, device);
    return out;
  }
  const int64_t length = shape_numel(shape);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, static_cast<size_t>(length) * dtype_size(dtype));
  Napi::TypedArray array;
  switch (dtype) {
    case DType::F32: array = Napi::Float32Array::New(env, length, buffer, 0); break;
    case DType::I32: array = Napi::Int32Array::New(env, length, buffer, 0); break;
    case DType::U8: array = Napi::Uint8Array::New(env, length, buffer, 0); break;
  }
  out.tensor = Tensor::borrow(buffer.Data(), shape, dtype, Device::cpu());
  out.js = persistent(array);
  out.keep_alive.push_back(array);
  return out;
}

Napi::Value output_value(Napi::Env env, const TensorArg& output) {
  return output.js ? output.js->Value() : AddonTensor::create(env, output.tensor);
}

std::shared_ptr<Napi::Reference<Napi::Value>> persistent(const Napi::Value& value) {
  return std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(value));
}

void require_disjoint(const TensorArg& out, const std::string& out_name, const TensorArg& in,
                      const std::string& in_name, bool allow_identical) {
  if (out.tensor.device() != in.tensor.device() || out.tensor.nbytes() == 0 || in.tensor.nbytes() == 0) return;
  const auto* out_begin = static_cast<const uint8_t*>(out.tensor.data());
  const auto* in_begin = static_cast<const uint8_t*>(in.tensor.data());
  const bool identical = out_begin == in_begin && out.tensor.nbytes() == in.tensor.nbytes();
  if (identical && allow_identical) return;
  if (out_begin < in_begin + in.tensor.nbytes() && in_begin < out_begin + out.tensor.nbytes())
    fail(ErrorCode::Range, out_name + ": overlaps the memory of " + in_name +
                               (allow_identical ? " (only exactly the same buffer is allowed, for in place)" : ""));
}

void require_outputs_disjoint(const NamedArgs& outputs, const NamedArgs& inputs) {
  for (size_t i = 0; i < outputs.size(); i++) {
    if (!outputs[i].first) continue;
    for (const auto& [input, input_name] : inputs)
      if (input) require_disjoint(*outputs[i].first, outputs[i].second, *input, input_name);
    for (size_t j = i + 1; j < outputs.size(); j++)
      if (outputs[j].first) require_disjoint(*outputs[i].first, outputs[i].second, *outputs[j].first, outputs[j].second);
  }
}

TensorArg output_arg(Napi::Env env, const Napi::Value& out, const std::string& name, int64_t length, DType dtype,
                     Device device, bool as_handle) {
  if (out.IsUndefined()) return new_output(env, length, dtype, device, as_handle);
  TensorArg arg = tensor_arg(out, name, dtype);
  require_length(arg, name, length, "one per input element");
  require_same_device(arg, name, device);
  return arg;
}

TensorArg matrix_output_arg(Napi::Env env, const Napi::Value& out, const std::string& name, int64_t rows, int64_t cols,
                            DType dtype, Device device, bool as_handle) {
  if (out.IsUndefined()) return new_output(env, std::vector<int64_t>{rows, cols}, dtype, device, as_handle);
  TensorArg arg = matrix_arg(out, name, dtype, cols, "the input's columns");
  if (arg.tensor.shape()[0] != rows)
    fail(ErrorCode::Shape, name + ": expected " + std::to_string(rows) + " rows like the input, got shape " +
                               arg.tensor.shape_string());
  require_same_device(arg, name, device);
  return arg;
}

template <typename T>
static std::vector<T> host_copy(const Tensor& tensor) {
  std::vector<T> host(static_cast<size_t>(tensor.numel()));
  device_copy(host.data(), Device::cpu(), tensor.data(), tensor.device(), host.size() * sizeof(T));
  return host;
}
std::vector<int32_t> host_int32(const Tensor& tensor) { return host_copy<int32_t>(tensor); }
std::vector<float> host_float32(const Tensor& tensor) { return host_copy<float>(tensor); }

std::vector<int32_t> checked_indices(const TensorArg& indices, const std::string& name, int64_t limit,
                                     const std::string& limit_name) {
  std::vector<int32_t> host = host_int32(indices.tensor);
  for (size_t i = 0; i < host.size(); i++)
    if (host[i] < 0 || host[i] >= limit)
      fail(ErrorCode::Range, name + ": expected every entry in [0, " + std::to_string(limit) + ") (" + limit_name +
                                 "), got " + name + "[" + std::to_string(i) + "] = " + std::to_string(host[i]));
  return host;
}

std::vector<int32_t> checked_offsets(const TensorArg& offsets_arg, const std::string& name, int64_t total,
                                     const std::string& total_name) {
  if (offsets_arg.tensor.numel() < 1)
    fail(ErrorCode::Shape, name + ": expected length >= 1 (it starts with 0), got an empty array");
  std::vector<int32_t> offsets = host_int32(offsets_arg.tensor);
  if (offsets[0] != 0) fail(ErrorCode::Shape, name + ": expected " + name + "[0] = 0, got " + std::to_string(offsets[0]));
  for (size_t i = 1; i < offsets.size(); i++)
    if (offsets[i] < offsets[i - 1])
      fail(ErrorCode::Shape, name + ": must not decrease, but " + name + "[" + std::to_string(i) + "] = " +
                                 std::to_string(offsets[i]) + " < " + name + "[" + std::to_string(i - 1) + "] = " +
                                 std::to_string(offsets[i - 1]));
  if (offsets.back() != total)
    fail(ErrorCode::Shape, name + ": must end at " + total_name + " = " + std::to_string(total) + ", got " +
                               std::to_string(offsets.back()));
  return offsets;
}

int64_t longest_segment(const std::vector<int32_t>& offsets) {
  int64_t longest = 0;
  for (size_t i = 1; i < offsets.size(); i++) longest = std::max<int64_t>(longest, offsets[i] - offsets[i - 1]);
  return longest;
}

}  // namespace talaria::addon
