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

TensorArg tensor_arg(const Napi::Value& value, const std::string& name, DType dtype) {
  TensorArg arg;
  if (AddonTensor* handle = AddonTensor::unwrap(value)) {
    const Tensor& tensor = handle->tensor(name);
    if (tensor.dtype() != dtype)
      fail(ErrorCode::DType, name + ": expected " + expected_kind(dtype) + ", got a " +
                                 dtype_name(tensor.dtype()) + " Tensor");
    if (tensor.dim() != 1)
      fail(ErrorCode::Shape, name + ": expected a 1-D tensor, got shape " + tensor.shape_string());
    arg.tensor = tensor;
    arg.from_handle = true;
    arg.keep_alive.push_back(value);
    if (!handle->backing().IsEmpty()) arg.keep_alive.push_back(handle->backing());
    return arg;
  }
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != typed_array_type(dtype))
    fail(ErrorCode::DType, name + ": expected " + expected_kind(dtype) + ", got " + describe(value));
  auto array = value.As<Napi::TypedArray>();
  uint8_t* data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  arg.tensor = Tensor::borrow(data, {static_cast<int64_t>(array.ElementLength())}, dtype, Device::cpu());
  arg.keep_alive.push_back(value);
  return arg;
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

double number_option(const Napi::Object& options, const char* key, double fallback, double lo, double hi,
                     bool lo_inclusive, bool hi_inclusive) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) fail(ErrorCode::DType, std::string(key) + ": expected a number, got " + describe(value));
  double x = value.As<Napi::Number>().DoubleValue();
  const bool above_lo = lo_inclusive ? x >= lo : x > lo;
  const bool below_hi = hi_inclusive ? x <= hi : x < hi;
  if (!(above_lo && below_hi))  // written so that NaN fails
    fail(ErrorCode::Range, std::string(key) + ": expected a number in " + (lo_inclusive ? "[" : "(") +
                               Napi::Number::New(options.Env(), lo).ToString().Utf8Value() + ", " +
                               Napi::Number::New(options.Env(), hi).ToString().Utf8Value() + (hi_inclusive ? "], got " : "), got ") +
                               value.ToString().Utf8Value());
  return x;
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
  TensorArg out;
  out.from_handle = as_handle;
  if (as_handle) {
    out.tensor = Tensor::empty({length}, dtype, device);
    return out;
  }
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, static_cast<size_t>(length) * dtype_size(dtype));
  Napi::TypedArray array;
  switch (dtype) {
    case DType::F32: array = Napi::Float32Array::New(env, length, buffer, 0); break;
    case DType::I32: array = Napi::Int32Array::New(env, length, buffer, 0); break;
    case DType::U8: array = Napi::Uint8Array::New(env, length, buffer, 0); break;
  }
  out.tensor = Tensor::borrow(buffer.Data(), {length}, dtype, Device::cpu());
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
  arg.js = persistent(out);
  return arg;
}

std::vector<int32_t> host_int32(const Tensor& tensor) {
  std::vector<int32_t> host(static_cast<size_t>(tensor.numel()));
  device_copy(host.data(), Device::cpu(), tensor.data(), tensor.device(), host.size() * sizeof(int32_t));
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
