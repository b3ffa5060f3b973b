#include "addon_tensor.h"

#include "addon_data.h"
#include "args.h"
#include "errors.h"

namespace talaria::addon {

Napi::Function AddonTensor::define_class(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {
                         StaticMethod<&AddonTensor::from_array>("fromArray"),
                         StaticMethod<&AddonTensor::wrap_array>("wrap"),
                         StaticMethod<&AddonTensor::empty>("empty"),
                         InstanceAccessor<&AddonTensor::shape>("shape"),
                         InstanceAccessor<&AddonTensor::dtype>("dtype"),
                         InstanceAccessor<&AddonTensor::device>("device"),
                         InstanceAccessor<&AddonTensor::is_disposed>("disposed"),
                         InstanceMethod<&AddonTensor::to_array>("toArray"),
                         InstanceMethod<&AddonTensor::to_device>("to"),
                         InstanceMethod<&AddonTensor::dispose>("dispose"),
                         InstanceMethod<&AddonTensor::view>("view"),
                         InstanceMethod<&AddonTensor::zero>("zero"),
                         InstanceMethod<&AddonTensor::copy_from>("copyFrom"),
                     });
}

// JS cannot construct handles directly: `create` passes this marker as the only argument.
static int construct_marker;

AddonTensor::AddonTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonTensor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &construct_marker)
    throw make_error(info.Env(), ErrorCode::DType,
                     "Tensor: use Tensor.from(), Tensor.wrap() or Tensor.empty() to make a tensor");
}

Napi::Object AddonTensor::create(Napi::Env env, const Tensor& tensor, Napi::Value backing) {
  Napi::Object object =
      addon_data(env).tensor_constructor.New({Napi::External<int>::New(env, &construct_marker)});
  AddonTensor* self = Unwrap(object);
  self->tensor_ = tensor;
  self->shape_ = tensor.shape();
  self->dtype_ = tensor.dtype();
  self->device_ = tensor.device();
  if (!backing.IsEmpty()) self->backing_ = Napi::Persistent(backing);
  return object;
}

AddonTensor* AddonTensor::unwrap(const Napi::Value& value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  if (!object.InstanceOf(addon_data(value.Env()).tensor_constructor.Value())) return nullptr;
  return Unwrap(object);
}

const Tensor& AddonTensor::tensor(const std::string& what) const {
  if (disposed_) fail(ErrorCode::Disposed, what + ": the tensor was disposed");
  // A wrapped typed array whose ArrayBuffer was transferred (postMessage, structuredClone) no longer
  // owns the memory this tensor points at.
  if (!backing_.IsEmpty() && backing_.Value().As<Napi::TypedArray>().ArrayBuffer().IsDetached())
    fail(ErrorCode::Disposed, what + ": the typed array this tensor wraps was detached (its ArrayBuffer was transferred)");
  return tensor_;
}

// The dtype a typed array maps to; anything else is rejected.
static DType typed_array_dtype(const Napi::Value& data) {
  if (data.IsTypedArray()) {
    switch (data.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array: return DType::F32;
      case napi_int32_array: return DType::I32;
      case napi_uint8_array: return DType::U8;
      default: break;
    }
  }
  fail(ErrorCode::DType, "data: expected a Float32Array, Int32Array or Uint8Array, got " + describe(data));
}

// The requested shape (default: 1-D) after checking it holds exactly `numel` elements.
static std::vector<int64_t> shape_for(const Napi::Value& value, int64_t numel) {
  if (value.IsUndefined()) return {numel};
  std::vector<int64_t> shape = parse_shape(value, "shape");
  if (shape_numel(shape) != numel)
    fail(ErrorCode::Shape, "shape: holds " + std::to_string(shape_numel(shape)) + " elements but data has " +
                               std::to_string(numel));
  return shape;
}

// Tensor.fromArray(typedArray, {shape?, device?}): copies.
Napi::Value AddonTensor::from_array(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    TensorArg source = tensor_arg(info[0], "data", typed_array_dtype(info[0]));
    Napi::Object options = options_object(info[1], "Tensor.from options", {"shape", "device"});
    std::vector<int64_t> shape = shape_for(options.Get("shape"), source.tensor.numel());
    Tensor tensor = Tensor::empty(shape, source.tensor.dtype(), parse_device(options.Get("device"), "device"));
    tensor.copy_from(source.tensor);
    return create(info.Env(), tensor);
  });
}

// Tensor.wrap(typedArray, {shape?}): zero-copy view of the typed array's memory on the CPU.
Napi::Value AddonTensor::wrap_array(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    TensorArg view = tensor_arg(info[0], "data", typed_array_dtype(info[0]));
    Napi::Object options = options_object(info[1], "Tensor.wrap options", {"shape"});
    std::vector<int64_t> shape = shape_for(options.Get("shape"), view.tensor.numel());
    return create(info.Env(), Tensor::borrow(view.tensor.data(), shape, view.tensor.dtype(), Device::cpu()), info[0]);
  });
}

// Tensor.empty(shape, dtype, device?): uninitialised memory.
Napi::Value AddonTensor::empty(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    std::vector<int64_t> shape = parse_shape(info[0], "shape");
    DType dtype = parse_dtype(info[1], "dtype");
    Device device = parse_device(info[2], "device");
    return create(info.Env(), Tensor::empty(shape, dtype, device));
  });
}

Napi::Value AddonTensor::shape(const Napi::CallbackInfo& info) {
  Napi::Array shape = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); i++) shape.Set(i, Napi::Number::New(info.Env(), static_cast<double>(shape_[i])));
  return shape;
}

Napi::Value AddonTensor::dtype(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtype_name(dtype_)); }

Napi::Value AddonTensor::device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_.name()); }

Napi::Value AddonTensor::is_disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

Napi::Value AddonTensor::to_array(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& tensor = this->tensor("toArray");
    TensorArg out = new_output(info.Env(), tensor.numel(), tensor.dtype(), Device::cpu(), false);
    out.tensor.copy_from(tensor);
    return output_value(info.Env(), out);
  });
}

Napi::Value AddonTensor::to_device(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& tensor = this->tensor("to");
    if (info[0].IsUndefined()) fail(ErrorCode::Device, "device: expected a device string ('cpu', 'cuda' or 'cuda:N'), got undefined");
    Device device = parse_device(info[0], "device");
    return create(info.Env(), tensor.to(device));
  });
}

// tensor.view(shape, offset = 0): shares this tensor's memory (and keeps it, or the typed array it
// borrows, alive).
Napi::Value AddonTensor::view(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Tensor& tensor = this->tensor("view");
    std::vector<int64_t> shape = parse_shape(info[0], "shape");
    int64_t offset = 0;
    if (!info[1].IsUndefined()) {
      if (!info[1].IsNumber()) fail(ErrorCode::Range, "offset: expected a non-negative integer, got " + describe(info[1]));
      double value = info[1].As<Napi::Number>().DoubleValue();
      if (!(value >= 0 && value <= kMaxSafeInteger && value == static_cast<double>(static_cast<int64_t>(value))))
        fail(ErrorCode::Range, "offset: expected a non-negative integer, got " + describe(info[1]));
      offset = static_cast<int64_t>(value);
    }
    return create(info.Env(), tensor.view(offset, shape), backing());
  });
}

Napi::Value AddonTensor::zero(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Tensor tensor = this->tensor("zero");
    tensor.zero();
    return info.This();
  });
}

// tensor.copyFrom(src): src is a Tensor (any device) or a typed array of the same dtype and element count.
Napi::Value AddonTensor::copy_from(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Tensor tensor = this->tensor("copyFrom");
    // A Tensor source may have any shape (only the element count must agree); typed arrays go through
    // the usual argument checks.
    AddonTensor* handle = unwrap(info[0]);
    Tensor source = handle ? handle->tensor("src") : tensor_arg(info[0], "src", tensor.dtype()).tensor;
    if (source.dtype() != tensor.dtype())
      fail(ErrorCode::DType, std::string("src: expected ") + dtype_name(tensor.dtype()) + ", got " + dtype_name(source.dtype()));
    if (source.numel() != tensor.numel())
      fail(ErrorCode::Shape, "src: expected " + std::to_string(tensor.numel()) + " elements (like " +
                                 tensor.shape_string() + "), got " + std::to_string(source.numel()));
    tensor.copy_from(source);
    return info.This();
  });
}

Napi::Value AddonTensor::dispose(const Napi::CallbackInfo& info) {
  // Frees the memory now unless a running async kernel still holds it; it frees it when done.
  tensor_ = Tensor();
  backing_.Reset();
  disposed_ = true;
  return info.Env().Undefined();
}

}  // namespace talaria::addon
