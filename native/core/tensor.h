// Tensor: a contiguous, row-major block of f32/i32/u8 elements on one device. Storage is shared between
// copies of a Tensor handle, so an async kernel can keep its inputs alive after JS disposes them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device.h"

namespace talaria {

enum class DType { F32, I32, U8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "f32" | "i32" | "u8"

// Owns (or, when borrowed, merely points at) bytes on a device.
class Storage {
 public:
  Storage(void* data, size_t bytes, Device device, std::function<void(void*)> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t bytes_;
  Device device_;
  std::function<void(void*)> release_;  // empty for borrowed memory
};

class Tensor {
 public:
  Tensor() = default;

  // Fresh, uninitialised memory (64-byte aligned on the CPU).
  static Tensor empty(const std::vector<int64_t>& shape, DType dtype, Device device);
  // Points at memory the caller keeps alive for the Tensor's lifetime (zero-copy typed arrays).
  static Tensor borrow(void* data, const std::vector<int64_t>& shape, DType dtype, Device device);

  bool defined() const { return storage_ != nullptr; }
  void* data() const { return storage_ ? static_cast<char*>(storage_->data()) + offset_bytes_ : nullptr; }
  template <class T>
  T* data_as() const { return static_cast<T*>(data()); }

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }

  // A new tensor with the same contents on `device`.
  Tensor to(Device device) const;
  // Copies `src` (same dtype and element count, any device) into this tensor.
  void copy_from(const Tensor& src);
  // Sets every element to zero (all-zero bytes is 0 for f32, i32 and u8).
  void zero();
  // A tensor sharing this one's storage: `shape` elements starting `offset` elements in. Throws
  // ERR_TALARIA_RANGE when they do not fit. Parameters of a model are views into one flat buffer, so a
  // single kernel call can update, clip or zero all of them.
  Tensor view(int64_t offset, const std::vector<int64_t>& shape) const;

  std::string shape_string() const;  // "[64, 1024]"

 private:
  std::shared_ptr<Storage> storage_;
  std::vector<int64_t> shape_;
  DType dtype_ = DType::F32;
  size_t offset_bytes_ = 0;  // where a view starts inside its storage
};

// Checked element count of a shape: rejects negative sizes and products that overflow int64.
int64_t shape_numel(const std::vector<int64_t>& shape);

}  // namespace talaria
