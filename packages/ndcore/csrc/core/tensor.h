// tensor.h owns the tensor data model: Device, Storage (owns bytes), TensorImpl (a strided view
// of a storage with dtype, version counter and autograd slots) and nd::Tensor, the refcounted
// handle that C++ code and extensions pass around.
//
// Note [Views share storage and versions]
// A view (reshape, slice, transpose, ...) is a new TensorImpl over the same Storage. The version
// counter lives in the Storage, so an in-place write through any view bumps the version every
// other view sees; autograd compares saved versions against it (see ndgrad).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"

namespace nd {

using Shape = std::vector<int64_t>;

struct Device {
  int16_t type = 0;  // 0 is cpu; others come from the device registry (device.h)
  int16_t index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == 0; }
  std::string str() const;
};

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  std::shared_ptr<void> owner;  // keeps the allocation (or the foreign buffer) alive
  std::atomic<int64_t> version{0};
  bool shared_memory = false;
};

// Opaque per-tensor autograd state; ndgrad's binding layer subclasses it.
struct AutogradMeta {
  virtual ~AutogradMeta() = default;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  bool requires_grad = false;
  bool wrapped_number = false;  // a Python scalar lifted to 0-d: lower promotion priority
  std::shared_ptr<AutogradMeta> autograd;
  // The tensor a view was taken from (never itself a view); null for non-views. Autograd uses it
  // to rebase the graph when an in-place op writes through a view (torch's `_base`).
  std::shared_ptr<TensorImpl> base;
};

int64_t numel_of(const Shape& s);
Shape contiguous_strides(const Shape& sizes);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& sizes() const { return impl_->sizes; }
  const Shape& strides() const { return impl_->strides; }
  int64_t dim() const { return (int64_t)impl_->sizes.size(); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return numel_of(impl_->sizes); }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  size_t itemsize() const { return nd::itemsize(impl_->dtype); }
  bool is_contiguous() const;
  bool requires_grad() const { return impl_->requires_grad; }
  Storage& storage() const { return *impl_->storage; }
  int64_t version() const { return impl_->storage->version.load(std::memory_order_relaxed); }
  void bump_version() const { impl_->storage->version.fetch_add(1, std::memory_order_relaxed); }

  // Address of element 0 of this view (host-addressable devices only).
  char* data_ptr() const {
    return static_cast<char*>(impl_->storage->data) + impl_->offset * (int64_t)itemsize();
  }
  template <typename T> T* data() const { return reinterpret_cast<T*>(data_ptr()); }

  // A new view of the same storage.
  Tensor view_of(Shape sizes, Shape strides, int64_t offset) const;

  // The ops below are declared in ops.h; these members forward to them for torch-like C++.
  Tensor clone() const;
  Tensor contiguous() const;
  Tensor to(DType t) const;
  Tensor operator-() const;
  Tensor& zero_();
  Tensor& operator+=(const Tensor& o);
  Tensor& operator-=(const Tensor& o);
  Tensor& operator*=(const Tensor& o);
  Tensor& operator/=(const Tensor& o);
  Tensor as_strided(const Shape& sizes, const Shape& strides, int64_t offset = -1) const;
  Tensor diag(int64_t diagonal = 0) const;
  Tensor unsqueeze(int64_t d) const;
  Tensor view(const Shape& s) const;
  Tensor reshape(const Shape& s) const;
  Tensor sum() const;
  double item_double() const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Allocation on any registered device (device.h); CPU uses the caching allocator.
std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device);
Tensor empty_tensor(const Shape& sizes, DType dtype, Device device = Device{});
void empty_host_cache();
// A 0-d CPU tensor holding a Python-style number (wrapped: see promotion in result_type).
Tensor scalar_tensor(double v, DType dtype, bool wrapped = false);
Tensor scalar_tensor_int(int64_t v, DType dtype, bool wrapped = false);
Tensor scalar_tensor_bool(bool v, bool wrapped = false);

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);

}  // namespace nd
