// Tensor.__getitem__/__setitem__: basic indexing becomes views (select, slice, unsqueeze);
// tensors, lists and arrays become one advanced `index`/`index_put_` call, following torch's
// order (basic indexing first, then advanced on the resulting view).
#include "py_tensor.h"

namespace nd {
namespace {

Tensor index_tensor_from(py::handle h) {
  if (is_tensor(h)) return unwrap(h);
  py::object np = py::module_::import("numpy");
  py::array arr = np.attr("asarray")(h);
  if (arr.size() == 0 && arr.dtype().kind() == 'f') arr = np.attr("asarray")(h, "int64");
  char k = arr.dtype().kind();
  if (k != 'b' && k != 'i' && k != 'u')
    throw py::index_error("tensors used as indices must be long, int, byte or bool tensors; got an array of dtype " + std::string(py::str(arr.dtype())));
  if (k == 'u' && arr.dtype().itemsize() != 1) arr = np.attr("asarray")(arr, "int64");
  return tensor_from_numpy(np.attr("ascontiguousarray")(arr), "index");
}

struct Parsed {
  Tensor view;
  std::vector<Tensor> adv;  // aligned with view's dims; undefined = full slice
  bool has_adv = false;
};

Parsed apply_index(const Tensor& self, py::handle key) {
  py::tuple items;
  if (py::isinstance<py::tuple>(key)) {
    items = py::reinterpret_borrow<py::tuple>(key);
  } else {
    items = py::make_tuple(key);
  }
  // how many dims the key consumes, to expand the Ellipsis
  int64_t consumed = 0;
  bool seen_ellipsis = false;
  for (auto it : items) {
    if (it.is_none() || PyBool_Check(it.ptr())) continue;
    if (it.ptr() == Py_Ellipsis) {
      if (seen_ellipsis) throw py::index_error("an index can only have a single ellipsis ('...')");
      seen_ellipsis = true;
      continue;
    }
    if (is_tensor(it)) {
      Tensor t = unwrap(it);
      consumed += (t.dtype() == DType::Bool || t.dtype() == DType::UInt8) ? std::max<int64_t>(t.dim(), 1) : 1;
      if ((t.dtype() == DType::Bool || t.dtype() == DType::UInt8) && t.dim() == 0) consumed -= 1;
    } else {
      consumed += 1;
    }
  }
  if (consumed > self.dim())
    throw py::index_error("too many indices for tensor of dimension " + std::to_string(self.dim()) + " (got " + std::to_string(consumed) + ")");
  Parsed p;
  Tensor v = self;
  int64_t dim = 0;
  std::vector<Tensor> adv;  // per dim of the evolving view
  for (auto it : items) {
    if (it.ptr() == Py_Ellipsis) {
      int64_t skip = self.dim() - consumed;
      for (int64_t k = 0; k < skip; ++k) adv.push_back(Tensor());
      dim += skip;
    } else if (it.is_none()) {
      v = nd::unsqueeze(v, dim);
      adv.push_back(Tensor());
      ++dim;
    } else if (PyBool_Check(it.ptr())) {
      // x[True] adds a dim of size 1; x[False] one of size 0 (NumPy semantics)
      v = nd::unsqueeze(v, dim);
      if (it.ptr() == Py_False) v = nd::slice(v, dim, 0, 0, 1);
      adv.push_back(Tensor());
      ++dim;
    } else if (PySlice_Check(it.ptr())) {
      Py_ssize_t start, stop, step;
      if (PySlice_Unpack(it.ptr(), &start, &stop, &step) < 0) throw py::error_already_set();
      if (step <= 0) throw py::value_error("[index] step must be greater than zero (negative slice steps are not supported; use flip)");
      PySliceObject* s = reinterpret_cast<PySliceObject*>(it.ptr());
      std::optional<int64_t> st, en;
      if (s->start != Py_None) st = start;
      if (s->stop != Py_None) en = stop;
      if (!(st == std::nullopt && en == std::nullopt && step == 1)) v = nd::slice(v, dim, st, en, step);
      adv.push_back(Tensor());
      ++dim;
    } else if (PyLong_Check(it.ptr()) || (PyIndex_Check(it.ptr()) && !is_tensor(it) && !py::isinstance<py::array>(it))) {
      int64_t i = py::int_(py::reinterpret_borrow<py::object>(it)).cast<int64_t>();
      if (dim >= v.dim()) throw py::index_error("too many indices for tensor of dimension " + std::to_string(self.dim()));
      int64_t n = v.sizes()[dim];
      if (i < -n || i >= n)
        throw py::index_error("index " + std::to_string(i) + " is out of bounds for dimension " + std::to_string(dim) + " with size " + std::to_string(n));
      v = nd::select(v, dim, i);
    } else {
      Tensor t = index_tensor_from(it);
      if (t.dim() == 0 && t.dtype() != DType::Bool && t.dtype() != DType::UInt8 && !is_floating(t.dtype())) {
        // a 0-d integer tensor indexes like an int (a view), as in torch
        int64_t i = (int64_t)t.item_double();
        int64_t n = v.sizes()[dim];
        if (i < -n || i >= n)
          throw py::index_error("index " + std::to_string(i) + " is out of bounds for dimension " + std::to_string(dim) + " with size " + std::to_string(n));
        v = nd::select(v, dim, i);
        continue;
      }
      if ((t.dtype() == DType::Bool || t.dtype() == DType::UInt8) && t.dim() == 0) {
        v = nd::unsqueeze(v, dim);
        t = nd::reshape(t, {1});
      }
      if (t.dtype() == DType::Bool || t.dtype() == DType::UInt8) {
        for (int64_t k = 0; k < t.dim(); ++k)
          if (dim + k >= v.dim() || t.sizes()[k] != v.sizes()[dim + k])
            throw py::index_error("[index] the shape of the mask " + shape_str(t.sizes()) + " at index " + std::to_string(k) +
                                  " does not match the shape of the indexed tensor " + shape_str(v.sizes()));
        adv.push_back(t);
        for (int64_t k = 1; k < t.dim(); ++k) adv.push_back(Tensor());
        dim += t.dim();
      } else {
        adv.push_back(t);
        ++dim;
      }
      p.has_adv = true;
    }
  }
  p.view = v;
  if (p.has_adv) {
    // Drop the placeholder slots that bool masks spanning several dims left behind: the
    // index kernel expands masks itself, so collapse each mask's trailing dims.
    std::vector<Tensor> aligned;
    for (size_t k = 0; k < adv.size(); ++k) {
      aligned.push_back(adv[k]);
      if (adv[k].defined() && (adv[k].dtype() == DType::Bool || adv[k].dtype() == DType::UInt8)) k += adv[k].dim() - 1;
    }
    while (!aligned.empty() && !aligned.back().defined()) aligned.pop_back();
    p.adv = aligned;
  }
  return p;
}

Tensor value_tensor(py::handle value, const Tensor& like) {
  if (is_tensor(value)) return unwrap(value);
  if (is_number(value)) return to_tensor_arg(value, "setitem", "value");
  py::object np = py::module_::import("numpy");
  py::array arr = np.attr("ascontiguousarray")(np.attr("asarray")(value));
  if (arr.dtype().kind() == 'f' && like.dtype() != DType::Float64) arr = np.attr("ascontiguousarray")(arr, "float64");
  return tensor_from_numpy(arr, "setitem");
}

py::object getitem(const Tensor& x, py::handle key) {
  if (PyLong_CheckExact(key.ptr()) && x.dim() > 0) {  // x[i], the dataset case: no key tuple
    int overflow = 0;
    long long i = PyLong_AsLongLongAndOverflow(key.ptr(), &overflow);
    int64_t n = x.sizes()[0];
    if (!overflow && i >= -n && i < n) return wrap(nd::select(x, 0, i));
  }
  Parsed p = apply_index(x, key);
  if (!p.has_adv) return wrap(p.view.impl() == x.impl() ? nd::alias(x) : p.view);
  return wrap(nd::index(p.view, p.adv));
}

void setitem(const Tensor& x, py::handle key, py::handle value) {
  Parsed p = apply_index(x, key);
  Tensor v = value_tensor(value, x);
  if (!p.has_adv) {
    nd::_copy_from(v, p.view);
  } else {
    nd::index_put_(p.view, p.adv, v, false);
  }
}

// The mapping slots, called by CPython directly (See Note [Operator slots] in ops.cpp).
PyObject* mp_subscript(PyObject* self, PyObject* key) {
  return guarded([&] { return getitem(unwrap(self), key); });
}
int mp_ass_subscript(PyObject* self, PyObject* key, PyObject* value) {
  if (!value) {
    PyErr_SetString(PyExc_TypeError, "Tensor does not support item deletion");
    return -1;
  }
  PyObject* r = guarded([&] {
    setitem(unwrap(self), key, value);
    return py::none();
  });
  if (!r) return -1;
  Py_DECREF(r);
  return 0;
}

}  // namespace

void init_indexing(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  cls.def("__getitem__", [](std::shared_ptr<TensorImpl> self, py::handle key) { return getitem(Tensor(self), key); });
  cls.def("__setitem__", [](std::shared_ptr<TensorImpl> self, py::handle key, py::handle value) {
    setitem(Tensor(self), key, value);
  });
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  type->tp_as_mapping->mp_subscript = mp_subscript;
  type->tp_as_mapping->mp_ass_subscript = mp_ass_subscript;
  PyType_Modified(type);
}

}  // namespace nd
