// The _C extension module: dtype, device and Generator objects, error translation, the device
// registry and hook plumbing for Python packages. Op bindings come from ops.cpp (table-driven).
#include <cblas.h>

#include <random>

#include "parallel.h"
#include "py_tensor.h"

namespace nd {
namespace winograd {  // kernels/winograd.h (bindings see core headers only)
void clear_weight_cache();
int64_t weight_cache_size();
}  // namespace winograd
}  // namespace nd

namespace nd {
DType default_float_dtype();
void set_default_float_dtype(DType dt);

namespace {

struct PyDType {
  DType t;
};
struct PyDevice {
  Device d;
};

// Leaked on purpose: destroying Python objects after interpreter shutdown crashes.
py::object* g_dtype_objs = new py::object[kNumDTypes];

// A device implemented in Python (ndcuda's CuPy backend, the test-only NumPy device).
struct PyDeviceBackend : DeviceBackend {
  py::object impl;
  explicit PyDeviceBackend(py::object o) : impl(std::move(o)) {}
  ~PyDeviceBackend() override {
    py::gil_scoped_acquire g;
    impl = py::object();
  }
  std::shared_ptr<Storage> allocate(size_t nbytes, Device device) override {
    py::gil_scoped_acquire g;
    py::tuple r = impl.attr("allocate")(nbytes, device.index);
    auto s = std::make_shared<Storage>();
    s->data = reinterpret_cast<void*>(r[0].cast<uintptr_t>());
    s->nbytes = nbytes;
    s->device = device;
    auto* keep = new py::object(r[1]);
    s->owner = std::shared_ptr<void>(keep, [](void* p) {
      if (!Py_IsInitialized()) return;
      py::gil_scoped_acquire g2;
      delete static_cast<py::object*>(p);
    });
    return s;
  }
  void copy_from_cpu(const Tensor& dst, const Tensor& src) override {
    py::gil_scoped_acquire g;
    impl.attr("copy_from_cpu")(wrap(dst), wrap(src));
  }
  void copy_to_cpu(const Tensor& dst, const Tensor& src) override {
    py::gil_scoped_acquire g;
    impl.attr("copy_to_cpu")(wrap(dst), wrap(src));
  }
  void run(Call& call) override {
    py::gil_scoped_acquire g;
    const OpDef& def = op_def(call.op);
    py::list inputs, outputs;
    for (auto& t : call.inputs) inputs.append(t.defined() ? wrap(t) : py::none());
    for (auto& t : call.outputs) outputs.append(t.defined() ? wrap(t) : py::none());
    py::dict attrs;
    for (size_t i = 0; i < def.attr_names.size() && i < call.attrs.size(); ++i) {
      const Value& v = call.attrs[i];
      py::object o;
      switch (v.kind) {
        case Value::Kind::None: o = py::none(); break;
        case Value::Kind::Bool: o = py::bool_(v.b); break;
        case Value::Kind::Int: o = py::int_(v.i); break;
        case Value::Kind::Double: o = py::float_(v.d); break;
        case Value::Kind::IntList: o = py::cast(v.list); break;
        case Value::Kind::Str: o = py::str(v.s); break;
        case Value::Kind::DType: o = dtype_object(v.to_dtype()); break;
        case Value::Kind::Device: o = device_object(v.dev); break;
        case Value::Kind::Object: o = py::none(); break;
      }
      attrs[def.attr_names[i]] = o;
    }
    py::object res = impl.attr("run")(def.name, inputs, attrs, outputs, call.inplace);
    std::vector<Tensor> outs;
    if (is_tensor(res)) {
      outs.push_back(unwrap(res));
    } else {
      for (auto h : res) outs.push_back(unwrap(h));
    }
    call.outputs = outs;
  }
  int device_count() override {
    py::gil_scoped_acquire g;
    return impl.attr("device_count")().cast<int>();
  }
};

}  // namespace

py::object dtype_object(DType t) { return g_dtype_objs[(int)t]; }
bool is_dtype(py::handle h) { return py::isinstance<PyDType>(h); }
DType to_dtype(py::handle h) {
  if (py::isinstance<PyDType>(h)) return h.cast<PyDType&>().t;
  if (h.ptr() == (PyObject*)&PyFloat_Type) return DType::Float64;
  if (h.ptr() == (PyObject*)&PyLong_Type) return DType::Int64;
  if (h.ptr() == (PyObject*)&PyBool_Type) return DType::Bool;
  if (py::isinstance<py::str>(h)) {
    std::string s = h.cast<std::string>();
    for (int i = 0; i < kNumDTypes; ++i)
      if (s == dtype_name((DType)i)) return (DType)i;
  }
  throw py::type_error("expected a dtype (e.g. nd.float32), got " + py_repr(h));
}

py::object device_object(Device d) {
  if (d.is_cpu()) {  // one shared object: every CPU tensor's .device, and autograd's per-op metadata
    static py::object* cpu = new py::object(py::cast(PyDevice{d}));  // leaked: outlives atexit
    return *cpu;
  }
  return py::cast(PyDevice{d});
}
Device to_device(py::handle h) {
  if (py::isinstance<PyDevice>(h)) return h.cast<PyDevice&>().d;
  if (py::isinstance<py::int_>(h)) {
    // a bare index means the current accelerator, as in torch
    auto names = device_type_names();
    if (names.size() < 2) throw py::value_error("device index " + py_repr(h) + " given but no accelerator is registered");
    return Device{1, (int16_t)h.cast<int>()};
  }
  if (py::isinstance<py::str>(h)) {
    std::string s = h.cast<std::string>();
    std::string type = s;
    int idx = 0;
    auto colon = s.find(':');
    if (colon != std::string::npos) {
      type = s.substr(0, colon);
      try {
        idx = std::stoi(s.substr(colon + 1));
      } catch (...) {
        throw py::value_error("invalid device string '" + s + "'");
      }
    }
    int16_t id = device_type_id(type);
    if (id < 0) {
      std::string known;
      for (auto& n : device_type_names()) known += (known.empty() ? "" : ", ") + n;
      throw py::value_error("unknown device type '" + type + "' (registered: " + known + ")");
    }
    if (id == 0 && idx != 0) throw py::value_error("cpu device index must be 0, got '" + s + "'");
    return Device{id, (int16_t)idx};
  }
  throw py::type_error("expected a device (str, nd.device or int), got " + py_repr(h));
}

std::string py_repr(py::handle h) { return py::repr(h).cast<std::string>(); }

}  // namespace nd

using namespace nd;

PYBIND11_MODULE(_C, m) {
  m.doc() = "ndcore's C++ core";

  // Errors name the op; shape/value problems subclass both RuntimeError (torch's choice) and
  // ValueError (Python's convention), so either `except` works.
  static py::handle value_error(PyErr_NewException(
      "ndcore.NdValueError", py::make_tuple(py::handle(PyExc_RuntimeError), py::handle(PyExc_ValueError)).ptr(), nullptr));
  static py::handle type_error(PyErr_NewException(
      "ndcore.NdTypeError", py::make_tuple(py::handle(PyExc_RuntimeError), py::handle(PyExc_TypeError)).ptr(), nullptr));
  m.attr("NdValueError") = py::reinterpret_borrow<py::object>(value_error);
  m.attr("NdTypeError") = py::reinterpret_borrow<py::object>(type_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const nd::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const nd::TypeError& e) {
      PyErr_SetString(type_error.ptr(), e.what());
    } catch (const nd::ValueError& e) {
      PyErr_SetString(value_error.ptr(), e.what());
    } catch (const nd::NotImplementedError& e) {
      PyErr_SetString(PyExc_NotImplementedError, e.what());
    }
  });

  py::class_<PyDType>(m, "dtype")
      .def_property_readonly("is_floating_point", [](const PyDType& d) { return is_floating(d.t); })
      .def_property_readonly("is_signed", [](const PyDType& d) { return is_signed(d.t); })
      .def_property_readonly("itemsize", [](const PyDType& d) { return itemsize(d.t); })
      .def_property_readonly("name", [](const PyDType& d) { return std::string(dtype_name(d.t)); })
      .def_property_readonly("is_complex", [](const PyDType&) { return false; })
      .def("__repr__", [](const PyDType& d) { return std::string("nd.") + dtype_name(d.t); })
      .def("__reduce__", [](const PyDType& d) { return py::make_tuple(py::module_::import("ndcore").attr("_dtype_by_name"), py::make_tuple(dtype_name(d.t))); })
      .def("to_real", [](const PyDType& d) { return dtype_object(d.t); });
  for (int i = 0; i < kNumDTypes; ++i) {
    g_dtype_objs[i] = py::cast(PyDType{(DType)i});
    m.attr(dtype_name((DType)i)) = g_dtype_objs[i];
  }

  py::class_<PyDevice>(m, "device")
      .def(py::init([](py::object spec, py::object index) {
             Device d = to_device(spec);
             if (!index.is_none()) d.index = (int16_t)index.cast<int>();
             return PyDevice{d};
           }),
           py::arg("type"), py::arg("index") = py::none())
      .def_property_readonly("type", [](const PyDevice& d) { return device_type_name(d.d.type); })
      .def_property_readonly("index", [](const PyDevice& d) -> py::object {
        return d.d.is_cpu() ? py::object(py::none()) : py::object(py::int_(d.d.index));
      })
      .def("__eq__", [](const PyDevice& a, py::object b) {
        if (py::isinstance<PyDevice>(b)) return a.d == b.cast<PyDevice&>().d;
        if (py::isinstance<py::str>(b)) {
          try { return a.d == to_device(b); } catch (...) { return false; }
        }
        return false;
      })
      .def("__hash__", [](const PyDevice& a) { return (int)a.d.type * 65536 + a.d.index; })
      .def("__str__", [](const PyDevice& a) { return a.d.str(); })
      .def("__repr__", [](const PyDevice& a) {
        std::string r = "device(type='" + device_type_name(a.d.type) + "'";
        if (!a.d.is_cpu()) r += ", index=" + std::to_string(a.d.index);
        return r + ")";
      });

  py::class_<Generator, std::shared_ptr<Generator>>(m, "Generator")
      .def(py::init([](py::object device) {
             if (!device.is_none() && !to_device(device).is_cpu())
               throw py::value_error("Generator: only the cpu generator lives in ndcore; device generators come with their backend");
             return std::make_shared<Generator>();
           }),
           py::arg("device") = py::none())
      .def("manual_seed", [](std::shared_ptr<Generator> g, uint64_t seed) { g->manual_seed(seed); return g; })
      .def("seed", [](std::shared_ptr<Generator> g) {
        uint64_t s = (uint64_t)std::random_device{}() << 32 | std::random_device{}();
        g->manual_seed(s);
        return s;
      })
      .def("initial_seed", &Generator::initial_seed)
      .def("get_state", [](const Generator& g) { return py::make_tuple(g.initial_seed(), g.offset()); })
      .def("set_state", [](std::shared_ptr<Generator> g, py::tuple st) {
        g->set_state(st[0].cast<uint64_t>(), st[1].cast<uint64_t>());
        return g;
      })
      .def_property_readonly("device", [](const Generator&) { return device_object(Device{}); });
  m.def("default_generator", []() {
    return std::shared_ptr<Generator>(&default_generator(), [](Generator*) {});
  });

  py::class_<TensorImpl, std::shared_ptr<TensorImpl>> cls(m, "Tensor", py::buffer_protocol(), py::dynamic_attr());
  init_tensor(m, cls);
  init_ops(m, cls);
  init_indexing(cls);
  init_hooks(m);
  init_autocast(m);

  m.def("get_num_threads", &get_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("set_num_threads expects a positive integer, got " + std::to_string(n));
    set_num_threads(n);
    scipy_openblas_set_num_threads(n);
  });
  m.def("blas_corename", []() { return std::string(scipy_openblas_get_corename()); });
  m.def("get_default_dtype", []() { return dtype_object(default_float_dtype()); });
  m.def("set_default_dtype", [](py::handle d) { set_default_float_dtype(to_dtype(d)); });
  m.def("promote_types", [](py::handle a, py::handle b) { return dtype_object(promote_types(to_dtype(a), to_dtype(b))); });
  m.def("can_cast", [](py::handle a, py::handle b) { return can_cast(to_dtype(a), to_dtype(b)); });
  m.def("empty_cache", []() {
    empty_host_cache();
    winograd::clear_weight_cache();  // transformed conv weights are cached memory too
  });
  m.def("_winograd_cache_entries", &winograd::weight_cache_size);
  m.def("register_device", [](const std::string& name, py::object impl) {
    return register_device_type(name, std::make_shared<PyDeviceBackend>(std::move(impl)));
  });
  m.def("device_types", &device_type_names);
  m.def("device_count", [](const std::string& name) {
    int16_t id = device_type_id(name);
    if (id <= 0) return 0;
    return device_backend(id)->device_count();
  });
  m.def("op_names", []() {
    std::vector<std::string> r;
    for (auto& d : op_table()) r.push_back(d.name);
    return r;
  });
}
