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

py::dict attrs_dict(const Call& c) {
  py::dict d;
  const OpDef& def = op_def(c.op);
  for (size_t i = 0; i < def.attr_names.size() && i < c.attrs.size(); ++i) d[def.attr_names[i]] = attr_value(c.attrs[i]);
  return d;
}
py::list tensor_list(const std::vector<Tensor>& ts) {
  py::list l;
  for (auto& t : ts) l.append(t.defined() ? wrap(t) : py::none());
  return l;
}

void autograd_trampoline(Call& c) {
  py::gil_scoped_acquire g;
  py::object r = g_autograd_fn(op_def(c.op).name, tensor_list(c.inputs), attrs_dict(c), tensor_list(c.outputs), c.inplace);
  if (!r.is_none()) {  // the hook may replace outputs (e.g. to rebase a view)
    std::vector<Tensor> outs;
    for (auto h : r) outs.push_back(unwrap(h));
    c.outputs = outs;
  }
}

void autograd_pre_trampoline(Call& c) {
  py::gil_scoped_acquire g;
  g_autograd_pre_fn(op_def(c.op).name, tensor_list(c.inputs), attrs_dict(c));
}

void* prof_begin_trampoline(const Call& c) {
  py::gil_scoped_acquire g;
  py::list shapes;
  for (auto& t : c.inputs) shapes.append(t.defined() ? py::cast(t.sizes()) : py::list());
  py::object tok = g_prof_begin_fn(op_def(c.op).name, shapes);
  return new py::object(tok);
}
void prof_end_trampoline(void* tok, const Call& c) {
  py::gil_scoped_acquire g;
  std::unique_ptr<py::object> t(static_cast<py::object*>(tok));
  g_prof_end_fn(*t, op_def(c.op).name);
}

void check_trampoline(const Call& c) {
  if (t_in_check) return;  // the check itself runs ops
  py::gil_scoped_acquire g;
  ++t_in_check;
  try {
    py::list shapes;
    for (auto& t : c.inputs) shapes.append(t.defined() ? py::cast(t.sizes()) : py::list());
    g_check_fn(op_def(c.op).name, tensor_list(c.inputs), tensor_list(c.outputs), shapes);
  } catch (...) {
    --t_in_check;
    throw;
  }
  --t_in_check;
}

void warn_trampoline(const std::string& msg) {
  py::gil_scoped_acquire g;
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
