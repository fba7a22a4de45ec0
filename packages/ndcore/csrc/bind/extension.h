// extension.h is what a C++ extension includes (`#include <nd/extension.h>`): nd::Tensor with
// the ops of the table (ops_gen.h) and operators, pybind11, and a type caster so nd::Tensor
// crosses to Python as the same ndcore.Tensor object. Ops called here go through ndcore's
// dispatcher, so autograd and the profiler see them as they see Python calls.
//
// The caster talks to ndcore through the `ndcore._C._tensor_api` capsule rather than through
// pybind11's type registry, so an extension built with another pybind11 version or compiler
// still exchanges tensors correctly.
#pragma once
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dispatch.h"
#include "ops_gen.h"
#include "scalar.h"
#include "tensor.h"

#ifndef ND_EXTENSION_NAME
#define ND_EXTENSION_NAME nd_extension
#endif

namespace nd {

// ---- operators for torch-style C++ (`-A.clone()`, `b / A.diag()`, `m * 2`) -------------------
inline Tensor wrap_number(double v) { return scalar_tensor(v, DType::Float64, true); }
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, wrap_number(b)); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, wrap_number(b)); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, wrap_number(b)); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, wrap_number(b)); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, wrap_number(a)); }
inline Tensor zeros_like(const Tensor& t) {
  Tensor r = empty_tensor(t.sizes(), t.dtype(), t.device());
  r.zero_();
  return r;
}
inline Tensor ones_like(const Tensor& t) {
  Tensor r = empty_tensor(t.sizes(), t.dtype(), t.device());
  fill_(r, Scalar(1));
  return r;
}
inline Tensor empty_like(const Tensor& t) { return empty_tensor(t.sizes(), t.dtype(), t.device()); }

// Function table exported by ndcore._C (see bind/tensor.cpp).
struct TensorApi {
  int version;
  PyObject* (*wrap)(const Tensor* t);     // new reference
  int (*unwrap)(PyObject* obj, Tensor* out);  // 1 on success, 0 if obj is not a Tensor
};
inline const TensorApi* tensor_api() {
  static const TensorApi* api = static_cast<const TensorApi*>(PyCapsule_Import("ndcore._C._tensor_api", 0));
  if (!api) throw pybind11::error_already_set();
  return api;
}

}  // namespace nd

namespace pybind11 {
namespace detail {
template <>
struct type_caster<nd::Tensor> {
  PYBIND11_TYPE_CASTER(nd::Tensor, const_name("ndcore.Tensor"));
  bool load(handle src, bool) { return nd::tensor_api()->unwrap(src.ptr(), &value) == 1; }
  static handle cast(const nd::Tensor& t, return_value_policy, handle) {
    PyObject* o = nd::tensor_api()->wrap(&t);
    if (!o) throw error_already_set();
    return o;
  }
};
}  // namespace detail
}  // namespace pybind11
