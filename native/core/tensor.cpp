#include "tensor.h"

#include "error.h"

namespace talaria {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "f32";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

Storage::Storage(void* data, size_t bytes, Device device, std::function<void(void*)> release)
    : data_(data), bytes_(bytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
  if (release_) release_(data_);
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t size : shape) {
    if (size < 0) throw Error(ErrorCode::Shape, "shape sizes must be >= 0");
    if (size != 0 && numel > INT64_MAX / 16 / size)
      throw Error(ErrorCode::Shape, "shape is too large: its element count overflows");
    numel *= size;
  }
  return numel;
}

int64_t Tensor::numel() const {
  int64_t numel = 1;
  for (int64_t size : shape_) numel *= size;
  return numel;
}

Tensor Tensor::empty(const std::vector<int64_t>& shape, DType dtype, Device device) {
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  void* data = device_alloc(device, bytes);
  Tensor t;
  t.storage_ = std::make_shared<Storage>(data, bytes, device, [device](void* p) { device_free(device, p); });
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::borrow(void* data, const std::vector<int64_t>& shape, DType dtype, Device device) {
  Tensor t;
  size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(data, bytes, device, nullptr);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::to(Device device) const {
  Tensor out = empty(shape_, dtype_, device);
  out.copy_from(*this);
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  TALARIA_CHECK(src.dtype() == dtype_, DType, "copy_from: dtype mismatch");
  TALARIA_CHECK(src.numel() == numel(), Shape, "copy_from: element count mismatch");
  device_copy(data(), device(), src.data(), src.device(), nbytes());
}

void Tensor::zero() { device_zero(device(), data(), nbytes()); }

Tensor Tensor::view(int64_t offset, const std::vector<int64_t>& shape) const {
  TALARIA_CHECK(defined(), Shape, "view: the tensor has no storage");
  const int64_t count = shape_numel(shape);
  const int64_t available = static_cast<int64_t>((storage_->bytes() - offset_bytes_) / dtype_size(dtype_));
  if (offset < 0 || offset > available || count > available - offset)
    throw Error(ErrorCode::Range, "view: " + std::to_string(count) + " elements at offset " + std::to_string(offset) +
                                      " do not fit in the " + std::to_string(available) + " elements of the tensor");
  Tensor t = *this;
  t.shape_ = shape;
  t.offset_bytes_ = offset_bytes_ + static_cast<size_t>(offset) * dtype_size(dtype_);
  return t;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); i++) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "]";
}

}  // namespace talaria
