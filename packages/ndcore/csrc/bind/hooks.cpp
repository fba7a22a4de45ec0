// Python ends of the dispatcher's hook slots (autograd, profiler, debug checks) and the grad
// mode switch. Each slot holds one Python callable; an empty slot costs the dispatcher nothing.
#include "py_tensor.h"

namespace nd {
namespace {

py::object g_autograd_fn, g_autograd_pre_fn, g_prof_begin_fn, g_prof_end_fn, g_check_fn, g_warn_fn;
thread_local int t_in_check = 0;

py::object attr_value(const Value& v) {
  switch (v.kind) {
    case Value::Kind::None: return py::none();
    case Value::Kind::Bool: return py::bool_(v.b);
    case Value::Kind::Int: return py::int_(v.i);
    case Value::Kind::Double: return py::float_(v.d);
    case Value::Kind::IntList: return py::cast(v.list);
    case Value::Kind::Str: return py::str(v.s);
    case Value::Kind::DType: return dtype_object(v.to_dtype());
    case Value::Kind::Device: return device_object(v.dev);
    case Value::Kind::Object: return py::none();
  }
  return py::none();
}

// Op names and attribute names as Python strings, made once per op: the hooks run on every
// recorded op, and fresh strings would be built and hashed each time.
const py::object& op_name_object(OpId id) {
  static std::vector<py::object>* names = new std::vector<py::object>();  // leaked: outlives atexit
  if ((size_t)id >= names->size()) names->resize(op_table().size() > (size_t)id ? op_table().size() : (size_t)id + 1);
  py::object& o = (*names)[id];
  if (!o) o = py::reinterpret_steal<py::object>(PyUnicode_InternFromString(op_def(id).name));
  return o;
}

py::dict attrs_dict(const Call& c) {
  static std::vector<std::vector<py::object>>* keys = new std::vector<std::vector<py::object>>();
  if ((size_t)c.op >= keys->size()) keys->resize(op_table().size() > (size_t)c.op ? op_table().size() : (size_t)c.op + 1);
  auto& k = (*keys)[c.op];
  const OpDef& def = op_def(c.op);
  if (k.size() != def.attr_names.size()) {
    k.clear();
    for (auto n : def.attr_names) k.push_back(py::reinterpret_steal<py::object>(PyUnicode_InternFromString(n)));
  }
  py::dict d;
  for (size_t i = 0; i < k.size() && i < c.attrs.size(); ++i) d[k[i]] = attr_value(c.attrs[i]);
  return d;
}
py::list tensor_list(const std::vector<Tensor>& ts) {
  py::list l(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) l[i] = ts[i].defined() ? wrap(ts[i]) : py::none();
  return l;
}

// Note [Autograd hook protocol]
// The recorder is called as fn(op, inputs, attrs, outputs, inplace, edges, needs, out_meta).
// `edges` holds, per input, None (no grad needed), (grad_fn, out_nr) for a non-leaf, (acc, 0)
// for a leaf whose extra dict holds its AccumulateGrad node `acc` (acc._variable() is the leaf),
// or True for a leaf the recorder must make that node for. `needs[k]` is edges[k] is not None.
// `out_meta` holds (shape, dtype, device) per output. Reading these here costs a few pointer loads, against
// several attribute lookups each from Python. The recorder returns None (nothing to do), a list
// of tensors replacing the outputs, or the new node, which this function then installs as the
// grad_fn of every floating output (out_nr i > 0 stored in the output's extra dict).
py::object out_nr_key() {
  static py::object* k = new py::object(py::reinterpret_steal<py::object>(PyUnicode_InternFromString("out_nr")));
  return *k;
}
py::object acc_key() {
  static py::object* k = new py::object(py::reinterpret_steal<py::object>(PyUnicode_InternFromString("acc")));
  return *k;
}
py::object variable_attr() {
  static py::object* k = new py::object(py::reinterpret_steal<py::object>(PyUnicode_InternFromString("_variable")));
  return *k;
}

// The edge of a leaf that requires grad: its cached AccumulateGrad when that node still refers
// to this very tensor object, else True (the recorder creates the node).
py::object leaf_edge(PyAutogradMeta* m, py::handle wrapper) {
  if (!m || !PyDict_Check(m->extra.ptr())) return py::bool_(true);
  PyObject* acc = PyDict_GetItemWithError(m->extra.ptr(), acc_key().ptr());
  if (!acc) {
    if (PyErr_Occurred()) throw py::error_already_set();
    return py::bool_(true);
  }
  py::object ref = py::reinterpret_steal<py::object>(PyObject_GetAttr(acc, variable_attr().ptr()));
  if (!ref) {
    PyErr_Clear();
    return py::bool_(true);
  }
  py::object target = py::reinterpret_steal<py::object>(PyObject_CallNoArgs(ref.ptr()));
  if (!target) throw py::error_already_set();
  if (target.ptr() != wrapper.ptr()) return py::bool_(true);
  return py::make_tuple(py::reinterpret_borrow<py::object>(acc), 0);
}

void autograd_trampoline(Call& c) {
  GilIfNeeded g;
  const size_t n_in = c.inputs.size(), n_out = c.outputs.size();
  py::list inputs(n_in), edges(n_in), needs(n_in);
  for (size_t k = 0; k < n_in; ++k) {
    const Tensor& t = c.inputs[k];
    const bool need = t.defined() && t.requires_grad();
    needs[k] = py::bool_(need);
    if (!t.defined()) {
      inputs[k] = py::none();
      edges[k] = py::none();
      continue;
    }
    py::object w = wrap(t);
    inputs[k] = w;
    PyAutogradMeta* m = need ? autograd_meta(t, false) : nullptr;
    if (!need) {
      edges[k] = py::none();
    } else if (!m || m->grad_fn.is_none()) {
      edges[k] = leaf_edge(m, w);
    } else {
      int64_t nr = 0;
      if (PyDict_Check(m->extra.ptr())) {
        PyObject* v = PyDict_GetItemWithError(m->extra.ptr(), out_nr_key().ptr());
        if (v) nr = PyLong_AsLongLong(v);
        if (PyErr_Occurred()) throw py::error_already_set();
      }
      edges[k] = py::make_tuple(m->grad_fn, nr);
    }
  }
  py::list outputs(n_out), meta(n_out);
  for (size_t i = 0; i < n_out; ++i) {
    const Tensor& t = c.outputs[i];
    if (!t.defined()) {
      outputs[i] = py::none();
      meta[i] = py::none();
      continue;
    }
    outputs[i] = wrap(t);
    py::tuple shape(t.dim());
    for (int64_t d = 0; d < t.dim(); ++d) shape[d] = py::int_(t.sizes()[d]);
    meta[i] = py::make_tuple(shape, dtype_object(t.dtype()), device_object(t.device()));
  }
  py::object name = op_name_object(c.op), attrs = attrs_dict(c);
  PyObject* argv[8] = {name.ptr(), inputs.ptr(), attrs.ptr(), outputs.ptr(), c.inplace ? Py_True : Py_False,
                       edges.ptr(), needs.ptr(), meta.ptr()};
  // vectorcall: no argument tuple is built for the recorder
  py::object r = py::reinterpret_steal<py::object>(PyObject_Vectorcall(g_autograd_fn.ptr(), argv, 8, nullptr));
  if (!r) throw py::error_already_set();
  if (r.is_none()) return;
  if (PyList_Check(r.ptr()) || PyTuple_Check(r.ptr())) {  // replaced outputs (e.g. a rebased view)
    std::vector<Tensor> outs;
    for (auto h : r) outs.push_back(unwrap(h));
    c.outputs = outs;
    return;
  }
  for (size_t i = 0; i < n_out; ++i) {
    const Tensor& t = c.outputs[i];
    if (!t.defined() || !is_floating(t.dtype())) continue;
    t.impl()->requires_grad = true;
    PyAutogradMeta* m = autograd_meta(t, true);
    m->grad_fn = r;
    if (i > 0) {
      if (!PyDict_Check(m->extra.ptr())) m->extra = py::dict();
      m->extra[out_nr_key()] = py::int_(i);
    } else if (PyDict_Check(m->extra.ptr()) && PyDict_Contains(m->extra.ptr(), out_nr_key().ptr()) == 1) {
      PyDict_DelItem(m->extra.ptr(), out_nr_key().ptr());  // a stale out_nr from an earlier node
    }
  }
}

void autograd_pre_trampoline(Call& c) {
  GilIfNeeded g;
  g_autograd_pre_fn(op_name_object(c.op), tensor_list(c.inputs), attrs_dict(c));
}

void* prof_begin_trampoline(const Call& c) {
  GilIfNeeded g;
  py::list shapes;
  for (auto& t : c.inputs) shapes.append(t.defined() ? py::cast(t.sizes()) : py::list());
  py::object tok = g_prof_begin_fn(op_name_object(c.op), shapes);
  return new py::object(tok);
}
void prof_end_trampoline(void* tok, const Call& c) {
  GilIfNeeded g;
  std::unique_ptr<py::object> t(static_cast<py::object*>(tok));
  g_prof_end_fn(*t, op_name_object(c.op));
}

void check_trampoline(const Call& c) {
  if (t_in_check) return;  // the check itself runs ops
  GilIfNeeded g;
  ++t_in_check;
  try {
    py::list shapes;
    for (auto& t : c.inputs) shapes.append(t.defined() ? py::cast(t.sizes()) : py::list());
    g_check_fn(op_name_object(c.op), tensor_list(c.inputs), tensor_list(c.outputs), shapes);
  } catch (...) {
    --t_in_check;
    throw;
  }
  --t_in_check;
}

void warn_trampoline(const std::string& msg) {
  GilIfNeeded g;
  if (g_warn_fn) g_warn_fn(msg);
}

}  // namespace

void init_hooks(py::module_& m) {
  m.def("_set_autograd_hook", [](py::object fn) {
    g_autograd_fn = fn;
    set_autograd_hook(fn.is_none() ? nullptr : &autograd_trampoline);
  });
  m.def("_set_autograd_pre_hook", [](py::object fn) {
    g_autograd_pre_fn = fn;
    set_autograd_pre_hook(fn.is_none() ? nullptr : &autograd_pre_trampoline);
  });
  m.def("_has_autograd", []() { return autograd_hook() != nullptr; });
  m.def("_set_profiler_hooks", [](py::object begin, py::object end) {
    g_prof_begin_fn = begin;
    g_prof_end_fn = end;
    if (begin.is_none()) set_profiler_hooks(nullptr, nullptr);
    else set_profiler_hooks(&prof_begin_trampoline, &prof_end_trampoline);
  });
  m.def("_set_check_hook", [](py::object fn) {
    g_check_fn = fn;
    set_check_hook(fn.is_none() ? nullptr : &check_trampoline);
  });
  m.def("is_grad_enabled", &grad_enabled);
  m.def("_set_grad_enabled", &set_grad_enabled);
  m.def("_set_rank_promotion", [](int p) { set_rank_promotion_policy(p); });
  m.def("_get_rank_promotion", &rank_promotion_policy);
  m.def("_set_warn_handler", [](py::object fn) {
    g_warn_fn = fn;
    set_warn_handler(fn.is_none() ? nullptr : &warn_trampoline);
  });
  // Cleared at exit so no Python object outlives the interpreter inside a C++ static.
  py::module_::import("atexit").attr("register")(py::cpp_function([]() {
    set_autograd_hook(nullptr);
    set_autograd_pre_hook(nullptr);
    set_profiler_hooks(nullptr, nullptr);
    set_check_hook(nullptr);
    set_warn_handler(nullptr);
    g_autograd_fn = py::object();
    g_autograd_pre_fn = py::object();
    g_prof_begin_fn = py::object();
    g_prof_end_fn = py::object();
    g_check_fn = py::object();
    g_warn_fn = py::object();
  }));
}

}  // namespace nd
