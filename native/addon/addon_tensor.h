// The JS-visible Tensor handle. It owns a talaria::Tensor (shared storage) and, for zero-copy wraps,
// a reference to the typed array whose memory it borrows, so that memory outlives the handle.
#pragma once
#include <napi.h>

#include "../core/tensor.h"

namespace talaria::addon {

class AddonTensor : public Napi::ObjectWrap<AddonTensor> {
 public:
  static Napi::Function define_class(Napi::Env env);
  // Wraps `tensor` in a new JS handle. `backing` is the typed array a borrowed tensor points into.
  static Napi::Object create(Napi::Env env, const Tensor& tensor, Napi::Value backing = Napi::Value());
  // The handle behind `value`, or nullptr when `value` is not a Tensor handle.
  static AddonTensor* unwrap(const Napi::Value& value);

  explicit AddonTensor(const Napi::CallbackInfo& info);

  bool disposed() const { return disposed_; }
  // The live tensor; throws ERR_TALARIA_DISPOSED naming `what` after dispose().
  const Tensor& tensor(const std::string& what) const;
  // The typed array a zero-copy tensor borrows from (empty otherwise).
  Napi::Value backing() const { return backing_.IsEmpty() ? Napi::Value() : backing_.Value(); }

 private:
  static Napi::Value from_array(const Napi::CallbackInfo& info);
  static Napi::Value wrap_array(const Napi::CallbackInfo& info);
  static Napi::Value empty(const Napi::CallbackInfo& info);

  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value is_disposed(const Napi::CallbackInfo& info);
  Napi::Value to_array(const Napi::CallbackInfo& info);
  Napi::Value to_device(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value view(const Napi::CallbackInfo& info);
  Napi::Value zero(const Napi::CallbackInfo& info);
  Napi::Value copy_from(const Napi::CallbackInfo& info);

  Tensor tensor_;
  // Kept after dispose() so shape/dtype/device stay readable.
  std::vector<int64_t> shape_;
  DType dtype_ = DType::F32;
  Device device_;
  bool disposed_ = false;
  Napi::Reference<Napi::Value> backing_;
};

}  // namespace talaria::addon
