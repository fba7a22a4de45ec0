// py_tensor.h owns the boundary between nd::Tensor and Python objects inside the binding
// module: wrapping, unwrapping, Python-number lifting, dtype/device objects and the autograd
// slots Python code reads through TensorImpl::autograd.
#pragma once
#include <optional>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "dispatch.h"
#include "ops_gen.h"
#include "scalar.h"
#include "tensor.h"

namespace py = pybind11;

namespace nd {

// Takes the GIL unless this thread holds it already: the hooks and autograd state run on
// every recorded op and tensor release, almost always from Python code holding it, where
// pybind11's gil_scoped_acquire would still look up its thread state.
struct GilIfNeeded {
  std::optional<py::gil_scoped_acquire> acquire;
  GilIfNeeded() {
    if (!PyGILState_Check()) acquire.emplace();
  }
};

// grad, grad_fn and friends live here so they follow the TensorImpl, not one Python wrapper.
struct PyAutogradMeta : AutogradMeta {
  py::object grad = py::none();
  py::object grad_fn = py::none();
  py::object extra = py::none();  // a dict ndgrad may use (hooks, retain_grad, ...)
  ~PyAutogradMeta() override {
    if (!Py_IsInitialized()) {  // interpreter gone: leak rather than touch freed state
      grad.release();
      grad_fn.release();
      extra.release();
      return;
    }
    GilIfNeeded g;
    grad = py::object();
    grad_fn = py::object();
    extra = py::object();
  }
};
PyAutogradMeta* autograd_meta(const Tensor& t, bool create);

py::object wrap(const Tensor& t);
py::object wrap(Tensor&& t);
bool is_tensor(py::handle h);
Tensor unwrap(py::handle h);  // a Tensor; raises TypeError otherwise
// A Tensor, or a Python/NumPy number lifted to a wrapped 0-d tensor; `op` names the error.
Tensor to_tensor_arg(py::handle h, const char* op, const char* param);
bool is_number(py::handle h);

py::object dtype_object(DType t);
bool is_dtype(py::handle h);
DType to_dtype(py::handle h);  // accepts nd dtypes and Python's float/int/bool
py::object device_object(Device d);
Device to_device(py::handle h);

std::string py_repr(py::handle h);

// Runs `f` (returning a py::object) as a raw CPython entry point: the result as a new reference,
// or null with the Python error set, C++ exceptions translated as pybind11's dispatcher would.
template <typename F>
PyObject* guarded(F&& f) {
  try {
    return f().release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
}
// Binds a METH_FASTCALL | METH_KEYWORDS function as a method of the Tensor class: CPython calls
// it without building argument tuples, and it skips pybind11's dispatcher. `def` must outlive the
// module (a static).
void add_fast_method(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls, PyMethodDef* def);
const std::shared_ptr<TensorImpl>* tensor_holder(PyObject* h);

void init_tensor(py::module_& m, py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls);
void init_ops(py::module_& m, py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls);
void init_indexing(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls);
void init_hooks(py::module_& m);
void init_autocast(py::module_& m);  // autocast.cpp

Tensor tensor_from_numpy(py::array arr, const char* op);
py::object tensor_to_numpy(const Tensor& t, bool force_copy);

}  // namespace nd
