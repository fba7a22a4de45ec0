// The Tensor class's Python surface that is not an op: metadata, autograd slots, conversions,
// NumPy and buffer-protocol interop (zero-copy both ways).
#include "py_tensor.h"

namespace nd {
bool is_contiguous_in_format(const Shape& sizes, const Shape& strides, const std::string& format);  // kernels/loops.h
Shape strides_for_format(const Tensor& x, const std::string& format, const char* op);                 // kernels/loops.h
DType default_float_dtype();
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
DType result_type(const std::vector<Tensor>& ts);

namespace {
// Leaked references (never destroyed after interpreter shutdown).
py::handle g_size_type;   // ndcore.Size, a tuple subclass set from Python
py::handle g_legacy_new;  // ndcore._legacy_new(*args) for nd.Tensor(2, 3) style construction
}  // namespace

namespace {
// A fresh op output: when `p` is its only owner no Python object can refer to it (each holds a
// shared_ptr), so pybind11's registered-instance lookup and type lookups are skipped; the
// instance is built and registered as pybind11's own cast does, so later casts find it.
py::object wrap_unowned(const std::shared_ptr<TensorImpl>& p) {
  static const py::detail::type_info* ti = py::detail::get_type_info(typeid(TensorImpl));
  auto inst = py::reinterpret_steal<py::object>(py::detail::make_new_instance(ti->type));
  auto* w = reinterpret_cast<py::detail::instance*>(inst.ptr());
  w->owned = true;
  py::detail::values_and_holders(w).begin()->value_ptr() = p.get();
  ti->init_instance(w, &p);
  return inst;
}
}  // namespace

py::object wrap(const Tensor& t) {
  const auto& p = t.impl_ptr();
  if (!p) return py::none();
  if (p.use_count() == 1) return wrap_unowned(p);
  // An existing wrapper, found as pybind11's cast finds it but matched by the Tensor type
  // object rather than through pybind11's per-type registry lookups.
  PyObject* found = nullptr;
  py::detail::with_instance_map(p.get(), [&](py::detail::instance_map& instances) {
    auto range = instances.equal_range(p.get());
    for (auto it = range.first; it != range.second && !found; ++it) {
      auto* o = reinterpret_cast<PyObject*>(it->second);
      if (is_tensor(o) && py::detail::try_incref(o)) found = o;
    }
  });
  if (found) return py::reinterpret_steal<py::object>(found);
  return wrap_unowned(p);
}
py::object wrap(Tensor&& t) { return wrap(static_cast<const Tensor&>(t)); }

// The Tensor type object, cached: an exact-type pointer compare is the common, fast case.
PyTypeObject* g_tensor_type = nullptr;
bool is_tensor(py::handle h) {
  PyTypeObject* t = Py_TYPE(h.ptr());
  if (g_tensor_type) return t == g_tensor_type || PyType_IsSubtype(t, g_tensor_type);
  return py::isinstance<TensorImpl>(h);
}

// The holder of a Tensor object read in place (pybind11's simple layout: one C++ base, a
// shared_ptr holder), skipping the caster's type-registry lookups; null when `h` is not a
// Tensor or its holder was never constructed (Tensor.__new__ without __init__).
const std::shared_ptr<TensorImpl>* tensor_holder(PyObject* h) {
  if (!g_tensor_type || !is_tensor(h)) return nullptr;
  auto* inst = reinterpret_cast<py::detail::instance*>(h);
  if (!inst->simple_layout || !inst->simple_holder_constructed) return nullptr;
  return &py::detail::value_and_holder(inst, nullptr, 0, 0).holder<std::shared_ptr<TensorImpl>>();
}

Tensor unwrap(py::handle h) {
  if (const auto* holder = tensor_holder(h.ptr())) return Tensor(*holder);
  if (!py::isinstance<TensorImpl>(h)) throw py::type_error("expected a Tensor, got " + std::string(py::str(py::type::handle_of(h).attr("__name__"))));
  return Tensor(h.cast<std::shared_ptr<TensorImpl>>());
}

bool is_number(py::handle h) {
  return PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr()) || PyBool_Check(h.ptr()) ||
         (!is_tensor(h) && (PyObject_HasAttrString(h.ptr(), "__index__") || PyObject_HasAttrString(h.ptr(), "__float__")) &&
          !py::isinstance<py::str>(h) && !PySequence_Check(h.ptr()));
}

Tensor to_tensor_arg(py::handle h, const char* op, const char* param) {
  if (is_tensor(h)) return unwrap(h);
  if (PyBool_Check(h.ptr())) return scalar_tensor_bool(h.ptr() == Py_True, true);
  if (PyLong_Check(h.ptr())) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
    if (overflow) throw py::value_error(std::string("[") + op + "] integer " + py_repr(h) + " does not fit in int64");
    return scalar_tensor_int(v, DType::Int64, true);
  }
  if (PyFloat_Check(h.ptr())) return scalar_tensor(PyFloat_AsDouble(h.ptr()), DType::Float64, true);
  // NumPy scalars and other numbers: integer-like first
  if (!py::isinstance<py::str>(h) && !PySequence_Check(h.ptr())) {
    if (PyObject_HasAttrString(h.ptr(), "dtype") && PyObject_HasAttrString(h.ptr(), "item"))
      return to_tensor_arg(h.attr("item")(), op, param);
    if (PyIndex_Check(h.ptr())) return scalar_tensor_int(py::int_(py::reinterpret_borrow<py::object>(h)).cast<int64_t>(), DType::Int64, true);
    if (PyObject_HasAttrString(h.ptr(), "__float__")) return scalar_tensor(py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>(), DType::Float64, true);
  }
  throw py::type_error(std::string("[") + op + "] argument '" + param + "' must be a Tensor or a number, not " +
                       std::string(py::str(py::type::handle_of(h).attr("__name__"))));
}

PyAutogradMeta* autograd_meta(const Tensor& t, bool create) {
  auto& slot = t.impl()->autograd;
  if (!slot) {
    if (!create) return nullptr;
    slot = std::make_shared<PyAutogradMeta>();
  }
  return static_cast<PyAutogradMeta*>(slot.get());
}

namespace {

py::object make_size(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return g_size_type ? g_size_type(t) : py::object(t);
}

const char* numpy_format(DType t) {
  switch (t) {
    case DType::Bool: return "?";
    case DType::UInt8: return "B";
    case DType::Int8: return "b";
    case DType::Int16: return "h";
    case DType::Int32: return "i";
    case DType::Int64: return "q";
    case DType::Float16: return "e";
    case DType::Float32: return "f";
    case DType::Float64: return "d";
    default: return nullptr;
  }
}

py::dtype numpy_dtype(DType t) {
  const char* f = numpy_format(t);
  if (!f) throw py::type_error(std::string("Got unsupported ScalarType ") + dtype_name(t) + ": NumPy has no " + dtype_name(t) + "; call .float() first");
  return py::dtype(f);
}

DType from_numpy_dtype(const py::dtype& d, const char* op) {
  char kind = d.kind();
  int sz = (int)d.itemsize();
  if (kind == 'b') return DType::Bool;
  if (kind == 'u' && sz == 1) return DType::UInt8;
  if (kind == 'i') {
    if (sz == 1) return DType::Int8;
    if (sz == 2) return DType::Int16;
    if (sz == 4) return DType::Int32;
    if (sz == 8) return DType::Int64;
  }
  if (kind == 'f') {
    if (sz == 2) return DType::Float16;
    if (sz == 4) return DType::Float32;
    if (sz == 8) return DType::Float64;
  }
  throw py::type_error(std::string("[") + op + "] can't convert np.ndarray of type " + std::string(py::str(d)) +
                       ". The only supported types are: float64, float32, float16, int64, int32, int16, int8, uint8, and bool.");
}

py::object tolist_rec(const Tensor& t, int64_t dim, const char* base) {
  if (dim == t.dim()) {
    py::object r;
    ND_DISPATCH_ALL(t.dtype(), "tolist", [&] {
      scalar_t v = *reinterpret_cast<const scalar_t*>(base);
      if constexpr (std::is_same_v<scalar_t, bool>) r = py::bool_(v);
      else if constexpr (std::is_integral_v<scalar_t>) r = py::int_((int64_t)v);
      else r = py::float_((double)(typename compute_type<scalar_t>::type)v);
    });
    return r;
  }
  py::list out(t.sizes()[dim]);
  int64_t step = t.strides()[dim] * (int64_t)t.itemsize();
  for (int64_t i = 0; i < t.sizes()[dim]; ++i) out[i] = tolist_rec(t, dim + 1, base + i * step);
  return out;
}

Tensor cpu_of(const Tensor& t) { return t.device().is_cpu() ? t : nd::_to_copy(t, std::nullopt, Device{}); }

bool tensor_bool(const Tensor& x) {
  if (x.numel() != 1)
    throw py::value_error("[bool] Boolean value of Tensor with " + std::to_string(x.numel()) + " values is ambiguous");
  return x.item_double() != 0.0;
}
py::object tensor_float(const Tensor& x) {
  if (x.numel() != 1) throw py::type_error("[float] only one element tensors can be converted to Python scalars (got " + std::to_string(x.numel()) + " elements)");
  return py::float_(x.item_double());
}
py::object tensor_int(const Tensor& x) {
  if (x.numel() != 1) throw py::type_error("[int] only one element tensors can be converted to Python scalars (got " + std::to_string(x.numel()) + " elements)");
  Tensor c = cpu_of(x);
  return py::int_(tolist_rec(c.view_of({}, {}, c.offset()), 0, c.data_ptr()));
}
py::object tensor_index(const Tensor& x) {
  if (x.numel() != 1 || is_floating(x.dtype()))
    throw py::type_error("only integer tensors of a single element can be converted to an index");
  return py::int_((int64_t)x.item_double());
}

}  // namespace

Tensor tensor_from_numpy(py::array arr, const char* op) {
  if (!arr.dtype().attr("isnative").cast<bool>())
    throw py::value_error(std::string("[") + op + "] the numpy array has a byte order different from the native byte order; "
                          "convert it first (arr.astype(arr.dtype.newbyteorder('=')))");
  DType dt = from_numpy_dtype(arr.dtype(), op);
  int64_t nd_ = arr.ndim();
  Shape sizes(nd_), strides(nd_);
  int64_t isz = (int64_t)itemsize(dt), extent = 1;
  for (int64_t i = 0; i < nd_; ++i) {
    sizes[i] = arr.shape(i);
    int64_t sb = arr.strides(i);
    if (sb < 0)
      throw py::value_error(std::string("[") + op + "] at least one stride in the given numpy array is negative; copy it first (np.ascontiguousarray)");
    if (sb % isz != 0) throw py::value_error(std::string("[") + op + "] numpy array strides are not a multiple of the element size");
    strides[i] = sb / isz;
    if (sizes[i] == 0) extent = 0;
  }
  if (extent != 0) {
    extent = 1;
    for (int64_t i = 0; i < nd_; ++i) extent += (sizes[i] - 1) * strides[i];
  }
  auto st = std::make_shared<Storage>();
  st->data = const_cast<void*>(arr.data());
  st->nbytes = (size_t)extent * isz;
  auto* keep = new py::object(arr);
  st->owner = std::shared_ptr<void>(keep, [](void* p) {
    if (!Py_IsInitialized()) return;
    py::gil_scoped_acquire g;
    delete static_cast<py::object*>(p);
  });
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = st;
  impl->sizes = sizes;
  impl->strides = strides;
  impl->dtype = dt;
  return Tensor(impl);
}

py::object tensor_to_numpy(const Tensor& t, bool force_copy) {
  if (t.requires_grad())
    throw py::value_error("[numpy] can't call numpy() on a Tensor that requires grad; use tensor.detach().numpy() instead");
  if (!t.device().is_cpu()) {
    if (!force_copy)
      throw py::type_error("[numpy] can't convert " + t.device().str() + " device type tensor to numpy; use Tensor.cpu() to copy the tensor to host memory first");
  }
  Tensor c = cpu_of(t);
  Shape bytes(c.dim());
  for (int64_t i = 0; i < c.dim(); ++i) bytes[i] = c.strides()[i] * (int64_t)c.itemsize();
  auto* holder = new std::shared_ptr<Storage>(c.impl()->storage);
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  return py::array(numpy_dtype(c.dtype()), c.sizes(), bytes, c.data_ptr(), base);
}

namespace {
// The C ABI that extensions use to exchange tensors (see extension.h).
struct TensorApi {
  int version;
  PyObject* (*wrap)(const Tensor* t);
  int (*unwrap)(PyObject* obj, Tensor* out);
};
PyObject* api_wrap(const Tensor* t) {
  try {
    return wrap(*t).release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  }
}
int api_unwrap(PyObject* obj, Tensor* out) {
  if (!is_tensor(obj)) return 0;
  *out = unwrap(obj);
  return 1;
}
TensorApi g_tensor_api{1, &api_wrap, &api_unwrap};

// x.float() and friends, the hot path of data pipelines: `self` when the dtype already matches,
// else a _to_copy (recorded by autograd like any op). Takes torch's ignored memory_format.
template <DType D>
PyObject* dtype_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&]() -> py::object {
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    bool ok = nargs + nkw <= 1;
    for (Py_ssize_t i = 0; i < nkw && ok; ++i)
      ok = PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "memory_format") == 0;
    if (!ok) throw py::type_error(std::string("[") + dtype_name(D) + "] takes only memory_format as an argument");
    Tensor t = unwrap(self);
    if (t.dtype() == D) return py::reinterpret_borrow<py::object>(self);
    return wrap(nd::_to_copy(t, D));
  });
}

PyMethodDef g_dtype_methods[] = {
    {"bool", (PyCFunction)(void (*)())dtype_method<DType::Bool>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.bool)"},
    {"byte", (PyCFunction)(void (*)())dtype_method<DType::UInt8>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.uint8)"},
    {"char", (PyCFunction)(void (*)())dtype_method<DType::Int8>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.int8)"},
    {"short", (PyCFunction)(void (*)())dtype_method<DType::Int16>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.int16)"},
    {"int", (PyCFunction)(void (*)())dtype_method<DType::Int32>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.int32)"},
    {"long", (PyCFunction)(void (*)())dtype_method<DType::Int64>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.int64)"},
    {"half", (PyCFunction)(void (*)())dtype_method<DType::Float16>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.float16)"},
    {"bfloat16", (PyCFunction)(void (*)())dtype_method<DType::BFloat16>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.bfloat16)"},
    {"float", (PyCFunction)(void (*)())dtype_method<DType::Float32>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.float32)"},
    {"double", (PyCFunction)(void (*)())dtype_method<DType::Float64>, METH_FASTCALL | METH_KEYWORDS, "self.to(nd.float64)"},
};
}  // namespace

void add_fast_method(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls, PyMethodDef* def) {
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(type, def));
  if (!descr) throw py::error_already_set();
  if (PyObject_SetAttrString(cls.ptr(), def->ml_name, descr.ptr()) != 0) throw py::error_already_set();
}

void init_tensor(py::module_& m, py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  g_tensor_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  m.attr("_tensor_api") = py::capsule(&g_tensor_api, "ndcore._C._tensor_api");
  m.def("_set_size_type", [](py::object t) { g_size_type = t.release(); });
  m.def("_set_legacy_new", [](py::object f) { g_legacy_new = f.release(); });
  m.def("from_numpy", [](py::array arr) { return wrap(tensor_from_numpy(arr, "from_numpy")); }, py::arg("ndarray"));
  m.def("_tensor_from_array", [](py::array arr) { return wrap(tensor_from_numpy(arr, "tensor")); });
  m.def("_empty_on_device", [](std::vector<int64_t> shape, py::handle dtype, py::handle device) {
    return wrap(empty_tensor(shape, to_dtype(dtype), to_device(device)));
  });
  m.def("_wrap_scalar", [](py::handle x) { return wrap(to_tensor_arg(x, "scalar", "value")); });
  m.def("broadcast_shapes", [](py::args shapes) {
    Shape out;
    for (auto s : shapes) {
      Shape sh;
      if (py::isinstance<py::int_>(s)) sh = {s.cast<int64_t>()};
      else for (auto e : s) sh.push_back(e.cast<int64_t>());
      out = broadcast_shapes(out, sh, "broadcast_shapes");
    }
    return make_size(out);
  });
  m.def("_shallow_alias", [](py::handle t) {
    Tensor x = unwrap(t);
    return wrap(x.view_of(x.sizes(), x.strides(), x.offset()));
  });

  cls.def(py::init([](py::args args, py::kwargs kwargs) {
    if (!g_legacy_new) throw py::type_error("Tensor constructor is not ready (import ndcore first)");
    Tensor t = unwrap(g_legacy_new(*args, **kwargs));
    return std::make_shared<TensorImpl>(*t.impl());  // a distinct impl over the same storage
  }));

  cls.def_property_readonly("shape", [](const TensorImpl& t) { return make_size(t.sizes); })
      .def("size", [](const TensorImpl& t, py::object dim) -> py::object {
            if (dim.is_none()) return make_size(t.sizes);
            return py::int_(t.sizes[wrap_dim(dim.cast<int64_t>(), (int64_t)t.sizes.size(), "size")]);
          }, py::arg("dim") = py::none())
      .def("stride", [](const TensorImpl& t, py::object dim) -> py::object {
            if (dim.is_none()) return py::tuple(py::cast(t.strides));
            return py::int_(t.strides[wrap_dim(dim.cast<int64_t>(), (int64_t)t.strides.size(), "stride")]);
          }, py::arg("dim") = py::none())
      .def("dim", [](const TensorImpl& t) { return t.sizes.size(); })
      .def("ndimension", [](const TensorImpl& t) { return t.sizes.size(); })
      .def_property_readonly("ndim", [](const TensorImpl& t) { return t.sizes.size(); })
      .def("numel", [](const TensorImpl& t) { return numel_of(t.sizes); })
      .def("nelement", [](const TensorImpl& t) { return numel_of(t.sizes); })
      .def_property_readonly("dtype", [](const TensorImpl& t) { return dtype_object(t.dtype); })
      .def_property_readonly("device", [](const TensorImpl& t) { return device_object(t.storage->device); })
      .def_property_readonly("is_cuda", [](const TensorImpl& t) { return device_type_name(t.storage->device.type) == "cuda"; })
      .def_property_readonly("is_cpu", [](const TensorImpl& t) { return t.storage->device.is_cpu(); })
      .def("get_device", [](const TensorImpl& t) { return t.storage->device.is_cpu() ? -1 : (int)t.storage->device.index; })
      .def("element_size", [](const TensorImpl& t) { return itemsize(t.dtype); })
      .def_property_readonly("itemsize", [](const TensorImpl& t) { return itemsize(t.dtype); })
      .def_property_readonly("nbytes", [](const TensorImpl& t) { return numel_of(t.sizes) * (int64_t)itemsize(t.dtype); })
      .def("storage_offset", [](const TensorImpl& t) { return t.offset; })
      .def("data_ptr", [](const TensorImpl& t) { return reinterpret_cast<uintptr_t>(static_cast<char*>(t.storage->data) + t.offset * itemsize(t.dtype)); })
      .def("_storage_ptr", [](const TensorImpl& t) { return reinterpret_cast<uintptr_t>(t.storage->data); })
      .def("_storage_nbytes", [](const TensorImpl& t) { return t.storage->nbytes; })
      .def("is_contiguous", [](std::shared_ptr<TensorImpl> t, py::object memory_format) {
            if (memory_format.is_none()) return Tensor(t).is_contiguous();
            return is_contiguous_in_format(t->sizes, t->strides, py::str(memory_format).cast<std::string>());
          }, py::arg("memory_format") = py::none())
      .def_property_readonly("_version", [](const TensorImpl& t) { return t.storage->version.load(); })
      .def("_bump_version", [](const TensorImpl& t) { t.storage->version.fetch_add(1); })
      .def("_is_view_of", [](const TensorImpl& a, const TensorImpl& b) { return a.storage == b.storage; })
      .def("is_shared", [](const TensorImpl& t) { return t.storage->shared_memory; })
      .def("_mark_shared", [](const TensorImpl& t) { t.storage->shared_memory = true; })
      .def_property_readonly("_is_wrapped_number", [](const TensorImpl& t) { return t.wrapped_number; })
      .def("__hash__", [](py::handle self) { return (intptr_t)self.ptr(); });

  // Autograd slots: plain state here; ndgrad gives them meaning (see Note [One dispatch point]).
  cls.def_property("requires_grad", [](const TensorImpl& t) { return t.requires_grad; },
                   [](std::shared_ptr<TensorImpl> t, bool v) {
                     if (v && !autograd_hook())
                       throw py::value_error("requires_grad=True needs autograd: install the ndgrad package (pip install ndgrad, or the ndstack umbrella) and import it");
                     if (v && !is_floating(t->dtype))
                       throw py::value_error(std::string("only Tensors of floating point dtype can require gradients (got ") + dtype_name(t->dtype) + ")");
                     Tensor tt(t);
                     auto* meta = autograd_meta(tt, false);
                     if (!v && meta && !meta->grad_fn.is_none())
                       throw py::value_error("you can only change requires_grad flags of leaf variables; use detach() to get a tensor that doesn't require grad");
                     t->requires_grad = v;
                   })
      .def_property("grad", [](std::shared_ptr<TensorImpl> t) -> py::object {
                      auto* m2 = autograd_meta(Tensor(t), false);
                      return m2 ? m2->grad : py::none();
                    },
                    [](std::shared_ptr<TensorImpl> t, py::object g) {
                      if (!g.is_none()) {
                        Tensor gt = unwrap(g);
                        if (gt.sizes() != t->sizes)
                          throw py::value_error("assigned grad has shape " + shape_str(gt.sizes()) + " but the tensor has shape " + shape_str(t->sizes));
                        if (gt.dtype() != t->dtype)
                          throw py::type_error(std::string("assigned grad has dtype ") + dtype_name(gt.dtype()) + " but the tensor has dtype " + dtype_name(t->dtype));
                      }
                      autograd_meta(Tensor(t), true)->grad = g;
                    })
      .def_property("grad_fn", [](std::shared_ptr<TensorImpl> t) -> py::object {
                      auto* m2 = autograd_meta(Tensor(t), false);
                      return m2 ? m2->grad_fn : py::none();
                    },
                    [](std::shared_ptr<TensorImpl> t, py::object fn) { autograd_meta(Tensor(t), true)->grad_fn = fn; })
      .def_property("_ag", [](std::shared_ptr<TensorImpl> t) -> py::object {
                      auto* m2 = autograd_meta(Tensor(t), true);
                      if (m2->extra.is_none()) m2->extra = py::dict();
                      return m2->extra;
                    },
                    [](std::shared_ptr<TensorImpl> t, py::object v) { autograd_meta(Tensor(t), true)->extra = v; })
      .def_property_readonly("is_leaf", [](std::shared_ptr<TensorImpl> t) {
        auto* m2 = autograd_meta(Tensor(t), false);
        return !m2 || m2->grad_fn.is_none() || !t->requires_grad;
      })
      .def("_set_requires_grad_raw", [](TensorImpl& t, bool v) { t.requires_grad = v; })
      .def_property_readonly("_base", [](const TensorImpl& t) -> py::object {
        return t.base ? wrap(Tensor(t.base)) : py::object(py::none());
      })
      .def("_is_view", [](const TensorImpl& t) { return t.base != nullptr; })
      // True when this wrapper is the only owner of the tensor and of its memory, and the memory is
      // exactly the tensor's (contiguous, whole storage): ndgrad may then keep it as a .grad without
      // a copy. A view qualifies when it alone holds its base and the base is no view itself (e.g.
      // the t(t(P)) a Linear weight's gradient arrives as): nothing else can see the memory. The
      // holder argument below is a second reference while the call runs.
      .def("_sole_owner", [](const std::shared_ptr<TensorImpl>& t) {
        Tensor x(t);
        if (t.use_count() > 3 || !t->storage || !x.is_contiguous() || x.offset() != 0 ||
            (size_t)x.numel() * x.itemsize() != t->storage->nbytes)
          return false;
        if (t->base == nullptr) return t->storage.use_count() == 1;
        return t->base.use_count() == 1 && t->base->base == nullptr && t->storage.use_count() == 2;
      })
      // the strides a preserve_format copy of this tensor takes (Note [Memory formats]); the
      // *_like functions lay out their results by them, as torch's do
      .def("_preserve_format_strides", [](std::shared_ptr<TensorImpl> t) {
        return strides_for_format(Tensor(t), "preserve_format", "empty_like");
      })
      .def("_detach_alias", [](std::shared_ptr<TensorImpl> t) {
        Tensor x(t);
        return wrap(x.view_of(x.sizes(), x.strides(), x.offset()));
      })
      .def("_set_data", [](TensorImpl& self, std::shared_ptr<TensorImpl> other) {
        self.storage = other->storage;
        self.sizes = other->sizes;
        self.strides = other->strides;
        self.offset = other->offset;
        self.dtype = other->dtype;
      });

  // conversions
  cls.def("numpy", [](std::shared_ptr<TensorImpl> t, bool force) { return tensor_to_numpy(Tensor(t), force); }, py::arg("force") = false)
      .def("tolist", [](std::shared_ptr<TensorImpl> t) {
        Tensor c = cpu_of(Tensor(t));
        return tolist_rec(c, 0, c.data_ptr());
      })
      .def("item", [](std::shared_ptr<TensorImpl> t) -> py::object {
        Tensor x(t);
        if (x.numel() != 1)
          throw py::value_error("[item] a Tensor with " + std::to_string(x.numel()) + " elements cannot be converted to Scalar");
        Tensor c = cpu_of(x);
        return tolist_rec(c.view_of({}, {}, c.offset()), 0, c.data_ptr());
      })
      .def("__len__", [](const TensorImpl& t) {
        if (t.sizes.empty()) throw py::type_error("len() of a 0-d tensor");
        return t.sizes[0];
      })
      .def("__bool__", [](std::shared_ptr<TensorImpl> t) { return tensor_bool(Tensor(t)); })
      .def("__float__", [](std::shared_ptr<TensorImpl> t) { return tensor_float(Tensor(t)); })
      .def("__int__", [](std::shared_ptr<TensorImpl> t) { return tensor_int(Tensor(t)); })
      .def("__index__", [](std::shared_ptr<TensorImpl> t) { return tensor_index(Tensor(t)); });
  // int(x) and friends through the number slots directly (See Note [Operator slots] in ops.cpp)
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  type->tp_as_number->nb_bool = [](PyObject* self) -> int {
    PyObject* r = guarded([&] { return py::bool_(tensor_bool(unwrap(self))); });
    if (!r) return -1;
    Py_DECREF(r);
    return r == Py_True;
  };
  type->tp_as_number->nb_float = [](PyObject* self) { return guarded([&] { return tensor_float(unwrap(self)); }); };
  type->tp_as_number->nb_int = [](PyObject* self) { return guarded([&] { return tensor_int(unwrap(self)); }); };
  type->tp_as_number->nb_index = [](PyObject* self) { return guarded([&] { return tensor_index(unwrap(self)); }); };
  PyType_Modified(type);

  for (auto& def : g_dtype_methods) add_fast_method(cls, &def);

  cls.def_buffer([](TensorImpl& t) -> py::buffer_info {
    Tensor x(std::shared_ptr<TensorImpl>(&t, [](TensorImpl*) {}));
    if (!x.device().is_cpu()) throw py::type_error("buffer protocol is only available for cpu tensors");
    const char* fmt = numpy_format(t.dtype);
    if (!fmt) throw py::type_error(std::string("buffer protocol: no format for dtype ") + dtype_name(t.dtype));
    Shape bytes(x.dim());
    for (int64_t i = 0; i < x.dim(); ++i) bytes[i] = x.strides()[i] * (int64_t)x.itemsize();
    return py::buffer_info(x.data_ptr(), (py::ssize_t)x.itemsize(), fmt, x.dim(), x.sizes(), bytes);
  });
}

}  // namespace nd
