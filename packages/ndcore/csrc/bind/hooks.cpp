// Python ends of the dispatcher's hook slots (autograd, profiler, debug checks) and the grad
// mode switch. Each slot holds one Python callable; an empty slot costs the dispatcher nothing.
#include "py_tensor.h"

#include <structmember.h>  // after Python.h, which py_tensor.h brings in

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

// Note [Autograd fast recorder]
// Most recorded ops need nothing of the recorder but a node holding their formula, edges, attrs,
// output metadata and the inputs/results the formula reads (each with its version). For those the
// node is built here, without a call into Python: the recorder registers, through
// `_set_autograd_fast_recorder`, its node and saved-value classes (slotted Python classes whose
// slot offsets are read once from their member descriptors), its formula dict, the state that
// forces the Python path (saved-tensor hooks, anomaly mode), and a function that returns an op's
// plan (or None when only the Python recorder can handle it). A plan is used only while the
// formula dict still maps the op to the entry the plan was made from, so a re-registered formula
// is picked up on the next call. In-place ops, leaves without an AccumulateGrad yet, and ops
// without a plan take the Python path, which fills in the same fields.
struct FastRecorder {
  py::object node_type, saved_type, formulas, saved_hooks, anomaly, plan_fn, no_results, on_key, result_name;
  // slot offsets: OpNode's and _Saved's fields, in the order of kNodeSlots / kSavedSlots
  std::vector<Py_ssize_t> node_off, saved_off;
  std::vector<py::object> plans;  // per op id: unset (not asked yet), None, or the plan tuple
};
FastRecorder* g_fast = nullptr;  // leaked at exit on purpose (see the atexit handler)
std::atomic<int64_t> g_node_seq{0};

const char* const kNodeSlots[] = {"_name", "next_edges", "seq", "op", "formula", "input_names",
                                  "needs", "attrs", "out_meta", "saved_inputs", "saved_results"};
enum NodeSlot { kName, kEdges, kSeq, kOp, kFormula, kInputNames, kNeeds, kAttrs, kOutMeta, kSavedIn, kSavedRes };
const char* const kSavedSlots[] = {"tensor", "version", "op", "name", "out_nr", "unpack_hook"};
enum SavedSlot { sTensor, sVersion, sOp, sName, sOutNr, sUnpack };

std::vector<Py_ssize_t> slot_offsets(py::handle type, const char* const* names, size_t n) {
  std::vector<Py_ssize_t> off;
  for (size_t i = 0; i < n; ++i) {
    py::object d = py::reinterpret_steal<py::object>(PyObject_GetAttrString(type.ptr(), names[i]));
    if (!d) PyErr_Clear();
    if (!d || !Py_IS_TYPE(d.ptr(), &PyMemberDescr_Type))
      throw py::type_error(std::string("_set_autograd_fast_recorder: '") + names[i] + "' is not a __slots__ member of " + py_repr(type));
    PyMemberDef* m = reinterpret_cast<PyMemberDescrObject*>(d.ptr())->d_member;
    if (m->type != T_OBJECT_EX) throw py::type_error(std::string("_set_autograd_fast_recorder: slot '") + names[i] + "' has an unexpected type");
    off.push_back(m->offset);
  }
  return off;
}

// Stores a new reference into a slot of a freshly allocated object (the slot is still empty).
inline void put_slot(PyObject* obj, Py_ssize_t off, PyObject* value_new_ref) {
  PyObject** p = reinterpret_cast<PyObject**>(reinterpret_cast<char*>(obj) + off);
  Py_XSETREF(*p, value_new_ref);
}
inline PyObject* new_ref(py::handle h) { return Py_NewRef(h.ptr()); }

py::object new_instance(py::handle type) {
  PyTypeObject* tp = reinterpret_cast<PyTypeObject*>(type.ptr());
  PyObject* o = tp->tp_alloc(tp, 0);
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(o);
}

py::object make_saved(const FastRecorder& f, const Tensor& t, PyObject* op, PyObject* name, bool version_checked,
                      PyObject* out_nr) {
  py::object s = new_instance(f.saved_type);
  PyObject* o = s.ptr();
  put_slot(o, f.saved_off[sTensor], wrap(t).release().ptr());
  put_slot(o, f.saved_off[sVersion], version_checked ? PyLong_FromLongLong(t.version()) : Py_NewRef(Py_None));
  put_slot(o, f.saved_off[sOp], Py_NewRef(op));
  put_slot(o, f.saved_off[sName], Py_NewRef(name));
  put_slot(o, f.saved_off[sOutNr], out_nr);
  put_slot(o, f.saved_off[sUnpack], Py_NewRef(Py_None));
  return s;
}

// The plan of op `c.op`, or null when the Python recorder must run.
PyObject* fast_plan(FastRecorder& f, const Call& c, PyObject* name) {
  if (PyList_GET_SIZE(f.saved_hooks.ptr()) != 0) return nullptr;
  PyObject* on = PyDict_GetItemWithError(f.anomaly.ptr(), f.on_key.ptr());
  if (!on && PyErr_Occurred()) throw py::error_already_set();
  if (on && PyObject_IsTrue(on)) return nullptr;
  if ((size_t)c.op >= f.plans.size()) f.plans.resize(op_table().size() > (size_t)c.op ? op_table().size() : (size_t)c.op + 1);
  PyObject* entry = PyDict_GetItemWithError(f.formulas.ptr(), name);
  if (!entry) {
    if (PyErr_Occurred()) throw py::error_already_set();
    return nullptr;
  }
  PyObject* plan = f.plans[c.op].ptr();
  if (!plan || PyTuple_GET_ITEM(plan, 0) != entry) {
    py::object fresh = f.plan_fn(py::handle(name));  // Python code: index the vector again after it
    if (!PyTuple_Check(fresh.ptr()) || (PyTuple_GET_SIZE(fresh.ptr()) != 1 && PyTuple_GET_SIZE(fresh.ptr()) != 6))
      throw py::type_error("autograd plan function must return a 1-tuple or a 6-tuple");
    f.plans[c.op] = fresh;
    plan = fresh.ptr();
  }
  if (PyTuple_GET_ITEM(plan, 0) != entry || PyTuple_GET_SIZE(plan) != 6) return nullptr;
  return plan;
}

// plan = (entry, node_name, formula, input_names, saved_inputs, saved_results) where saved_inputs
// is a tuple of (position, name, metadata_only) and saved_results None (none read), True (all)
// or a tuple of output positions; (entry,) says the Python recorder handles this entry.
py::object fast_node(FastRecorder& f, const Call& c, PyObject* plan, PyObject* name, py::list& edges, py::list& needs) {
  const size_t n_in = c.inputs.size(), n_out = c.outputs.size();
  py::list saved_in(n_in);
  for (size_t k = 0; k < n_in; ++k) PyList_SET_ITEM(saved_in.ptr(), k, Py_NewRef(Py_None));
  PyObject* saved_plan = PyTuple_GET_ITEM(plan, 4);
  for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(saved_plan); ++j) {
    PyObject* item = PyTuple_GET_ITEM(saved_plan, j);
    const size_t k = (size_t)PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
    if (k >= n_in || !c.inputs[k].defined()) continue;
    const bool metadata_only = PyTuple_GET_ITEM(item, 2) == Py_True;
    py::object s = make_saved(f, c.inputs[k], name, PyTuple_GET_ITEM(item, 1), !metadata_only, Py_NewRef(Py_None));
    PyList_SetItem(saved_in.ptr(), (Py_ssize_t)k, s.release().ptr());
  }
  PyObject* result_plan = PyTuple_GET_ITEM(plan, 5);
  py::object results;
  if (result_plan == Py_None) {
    if (n_out <= 1) {
      results = f.no_results;
    } else {
      results = py::reinterpret_steal<py::object>(PyTuple_New((Py_ssize_t)n_out));
      for (size_t i = 0; i < n_out; ++i) PyTuple_SET_ITEM(results.ptr(), i, Py_NewRef(Py_None));
    }
  } else {
    py::list rs(n_out);
    for (size_t i = 0; i < n_out; ++i) {
      bool read = result_plan == Py_True;
      if (!read) {
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(result_plan) && !read; ++j)
          read = PyLong_AsSsize_t(PyTuple_GET_ITEM(result_plan, j)) == (Py_ssize_t)i;
      }
      const Tensor& t = c.outputs[i];
      if (!read || !t.defined()) {
        PyList_SET_ITEM(rs.ptr(), i, Py_NewRef(Py_None));
        continue;
      }
      // a detached alias, not the output itself: see _Saved in ndgrad (no cycle through C++ state)
      Tensor alias = t.view_of(t.sizes(), t.strides(), t.offset());
      py::object s = make_saved(f, alias, name, f.result_name.ptr(), true, PyLong_FromSize_t(i));
      PyList_SET_ITEM(rs.ptr(), i, s.release().ptr());
    }
    results = std::move(rs);
  }
  py::list meta(n_out);
  for (size_t i = 0; i < n_out; ++i) {
    const Tensor& t = c.outputs[i];
    if (!t.defined()) {
      PyList_SET_ITEM(meta.ptr(), i, Py_NewRef(Py_None));
      continue;
    }
    py::tuple shape(t.dim());
    for (int64_t d = 0; d < t.dim(); ++d) PyTuple_SET_ITEM(shape.ptr(), d, PyLong_FromLongLong(t.sizes()[d]));
    PyList_SET_ITEM(meta.ptr(), i, py::make_tuple(shape, dtype_object(t.dtype()), device_object(t.device())).release().ptr());
  }
  py::object node = new_instance(f.node_type);
  PyObject* o = node.ptr();
  put_slot(o, f.node_off[kName], new_ref(PyTuple_GET_ITEM(plan, 1)));
  put_slot(o, f.node_off[kEdges], edges.release().ptr());
  put_slot(o, f.node_off[kSeq], PyLong_FromLongLong(g_node_seq.fetch_add(1, std::memory_order_relaxed)));
  put_slot(o, f.node_off[kOp], Py_NewRef(name));
  put_slot(o, f.node_off[kFormula], new_ref(PyTuple_GET_ITEM(plan, 2)));
  put_slot(o, f.node_off[kInputNames], new_ref(PyTuple_GET_ITEM(plan, 3)));
  put_slot(o, f.node_off[kNeeds], needs.release().ptr());
  put_slot(o, f.node_off[kAttrs], attrs_dict(c).release().ptr());
  put_slot(o, f.node_off[kOutMeta], meta.release().ptr());
  put_slot(o, f.node_off[kSavedIn], saved_in.release().ptr());
  put_slot(o, f.node_off[kSavedRes], results.release().ptr());
  return node;
}

void install_grad_fn(Call& c, const py::object& node) {
  for (size_t i = 0; i < c.outputs.size(); ++i) {
    const Tensor& t = c.outputs[i];
    if (!t.defined() || !is_floating(t.dtype())) continue;
    t.impl()->requires_grad = true;
    PyAutogradMeta* m = autograd_meta(t, true);
    m->grad_fn = node;
    if (i > 0) {
      if (!PyDict_Check(m->extra.ptr())) m->extra = py::dict();
      m->extra[out_nr_key()] = py::int_(i);
    } else if (PyDict_Check(m->extra.ptr()) && PyDict_Contains(m->extra.ptr(), out_nr_key().ptr()) == 1) {
      PyDict_DelItem(m->extra.ptr(), out_nr_key().ptr());  // a stale out_nr from an earlier node
    }
  }
}

void autograd_trampoline(Call& c) {
  GilIfNeeded g;
  const size_t n_in = c.inputs.size(), n_out = c.outputs.size();
  py::list edges(n_in), needs(n_in);
  bool leaves_resolved = true;
  for (size_t k = 0; k < n_in; ++k) {
    const Tensor& t = c.inputs[k];
    const bool need = t.defined() && t.requires_grad();
    PyList_SET_ITEM(needs.ptr(), k, Py_NewRef(need ? Py_True : Py_False));
    PyAutogradMeta* m = need ? autograd_meta(t, false) : nullptr;
    if (!need) {
      PyList_SET_ITEM(edges.ptr(), k, Py_NewRef(Py_None));
    } else if (!m || m->grad_fn.is_none()) {
      py::object e = leaf_edge(m, wrap(t));
      leaves_resolved = leaves_resolved && e.ptr() != Py_True;
      PyList_SET_ITEM(edges.ptr(), k, e.release().ptr());
    } else {
      int64_t nr = 0;
      if (PyDict_Check(m->extra.ptr())) {
        PyObject* v = PyDict_GetItemWithError(m->extra.ptr(), out_nr_key().ptr());
        if (v) nr = PyLong_AsLongLong(v);
        if (PyErr_Occurred()) throw py::error_already_set();
      }
      PyList_SET_ITEM(edges.ptr(), k, py::make_tuple(m->grad_fn, nr).release().ptr());
    }
  }
  const py::object& name = op_name_object(c.op);
  if (g_fast && !c.inplace && leaves_resolved) {
    if (PyObject* plan = fast_plan(*g_fast, c, name.ptr())) {
      install_grad_fn(c, fast_node(*g_fast, c, plan, name.ptr(), edges, needs));
      return;
    }
  }
  py::list inputs(n_in);
  for (size_t k = 0; k < n_in; ++k) inputs[k] = c.inputs[k].defined() ? wrap(c.inputs[k]) : py::none();
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
  py::object attrs = attrs_dict(c);
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
  install_grad_fn(c, r);
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
  // config = (node_type, saved_type, formulas, saved_hooks, anomaly, plan_fn, no_results), or None
  m.def("_set_autograd_fast_recorder", [](py::object config) {
    if (config.is_none()) {
      delete g_fast;
      g_fast = nullptr;
      return;
    }
    auto t = config.cast<py::tuple>();
    if (t.size() != 7) throw py::value_error("_set_autograd_fast_recorder expects a 7-tuple");
    if (!PyDict_Check(t[2].ptr()) || !PyList_Check(t[3].ptr()) || !PyDict_Check(t[4].ptr()))
      throw py::type_error("_set_autograd_fast_recorder: formulas and anomaly must be dicts, saved_hooks a list");
    auto f = std::make_unique<FastRecorder>();
    f->node_type = t[0];
    f->saved_type = t[1];
    f->formulas = t[2];
    f->saved_hooks = t[3];
    f->anomaly = t[4];
    f->plan_fn = t[5];
    f->no_results = t[6];
    f->on_key = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("on"));
    f->result_name = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("result"));
    f->node_off = slot_offsets(f->node_type, kNodeSlots, std::size(kNodeSlots));
    f->saved_off = slot_offsets(f->saved_type, kSavedSlots, std::size(kSavedSlots));
    delete g_fast;
    g_fast = f.release();
  });
  // Sequence numbers of graph nodes, shared by nodes built here and in Python: backward runs the
  // newest node first.
  m.def("_next_node_seq", []() { return g_node_seq.fetch_add(1, std::memory_order_relaxed); });
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
    delete g_fast;
    g_fast = nullptr;
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
