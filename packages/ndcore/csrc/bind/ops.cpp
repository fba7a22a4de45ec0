// Table-driven op bindings: one generic argument parser reads each op's ParamSpecs (generated
// from ops/ops.yaml) and builds the nd::Call, so adding a row to the table adds the function,
// the method and the in-place variant with no binding code.
#include <unordered_map>

#include "py_tensor.h"

namespace nd {
namespace {

enum class PT { Tensor, OptTensor, TensorList, OptTensorList, Scalar, OptScalar, Int, OptInt, IntList, OptIntList,
                Float, OptFloat, Bool, OptBool, Str, OptStr, DTypeT, DeviceT, GeneratorT };

PT parse_type(const std::string& t) {
  static const std::unordered_map<std::string, PT> m = {
      {"Tensor", PT::Tensor}, {"Tensor?", PT::OptTensor}, {"Tensor[]", PT::TensorList}, {"Tensor?[]", PT::OptTensorList},
      {"Scalar", PT::Scalar}, {"Scalar?", PT::OptScalar}, {"int", PT::Int}, {"int?", PT::OptInt}, {"int[]", PT::IntList},
      {"int[]?", PT::OptIntList}, {"float", PT::Float}, {"float?", PT::OptFloat}, {"bool", PT::Bool}, {"bool?", PT::OptBool},
      {"str", PT::Str}, {"str?", PT::OptStr}, {"ScalarType?", PT::DTypeT}, {"Device?", PT::DeviceT}, {"Generator?", PT::GeneratorT}};
  auto it = m.find(t);
  if (it == m.end()) throw std::runtime_error("unknown schema type " + t);
  return it->second;
}

struct Param {
  std::string name, alias;
  PT type;
  bool required, kwonly, is_tensor;
  py::object default_;
};

struct Overload {
  OpId id;
  std::vector<Param> params;
  bool alias = false;  // another op's overload under this name: contributes no variants
  py::object result_type;  // namedtuple class for multi-output ops
};

py::object parse_default(const char* text, PT t) {
  if (!text) return py::object();
  std::string s(text);
  if (s == "None") return py::none();
  if (s == "True") return py::bool_(true);
  if (s == "False") return py::bool_(false);
  if (s == "[]") return py::list();
  if (!s.empty() && s[0] == '\'') return py::str(s.substr(1, s.size() - 2));
  if (t == PT::Float || t == PT::OptFloat || s.find('.') != std::string::npos || s.find('e') != std::string::npos)
    return py::float_(std::stod(s));
  return py::int_(std::stoll(s));
}

bool is_int_like(py::handle h) {
  if (PyBool_Check(h.ptr())) return false;
  if (PyLong_Check(h.ptr())) return true;
  if (is_tensor(h)) {
    Tensor t = unwrap(h);
    return t.dim() == 0 && !is_floating(t.dtype()) && t.dtype() != DType::Bool;
  }
  return PyIndex_Check(h.ptr()) && !py::isinstance<py::str>(h);
}

int64_t to_int(py::handle h) {
  if (PyLong_Check(h.ptr())) return h.cast<int64_t>();
  return py::int_(py::reinterpret_borrow<py::object>(h)).cast<int64_t>();
}

bool is_int_seq(py::handle h) {
  if (!(py::isinstance<py::tuple>(h) || py::isinstance<py::list>(h))) return false;
  for (auto e : h)
    if (!is_int_like(e)) return false;
  return true;
}

// Whether `h` can bind to a parameter of type t (overload resolution).
bool matches(PT t, py::handle h, bool first_tensor) {
  bool none = h.is_none();
  switch (t) {
    case PT::Tensor: return is_tensor(h) || (!first_tensor && is_number(h));
    case PT::OptTensor: return none || is_tensor(h) || (!first_tensor && is_number(h));
    case PT::TensorList:
      if (!(py::isinstance<py::tuple>(h) || py::isinstance<py::list>(h))) return false;
      for (auto e : h) if (!is_tensor(e)) return false;
      return true;
    case PT::OptTensorList: return py::isinstance<py::tuple>(h) || py::isinstance<py::list>(h);
    case PT::Scalar: return is_number(h) || (is_tensor(h) && unwrap(h).numel() == 1);
    case PT::OptScalar: return none || is_number(h) || (is_tensor(h) && unwrap(h).numel() == 1);
    case PT::Int: return is_int_like(h);
    case PT::OptInt: return none || is_int_like(h);
    case PT::IntList: return is_int_like(h) || is_int_seq(h);
    case PT::OptIntList: return none || is_int_like(h) || is_int_seq(h);
    case PT::Float: return is_number(h) && !PyBool_Check(h.ptr());
    case PT::OptFloat: return none || (is_number(h) && !PyBool_Check(h.ptr()));
    case PT::Bool: return PyBool_Check(h.ptr()) || PyLong_Check(h.ptr());
    case PT::OptBool: return none || PyBool_Check(h.ptr());
    case PT::Str: return py::isinstance<py::str>(h);
    case PT::OptStr: return none || py::isinstance<py::str>(h);
    case PT::DTypeT: return none || is_dtype(h) || h.ptr() == (PyObject*)&PyFloat_Type || h.ptr() == (PyObject*)&PyLong_Type || h.ptr() == (PyObject*)&PyBool_Type;
    case PT::DeviceT: return true;  // validated on conversion with a clear error
    case PT::GeneratorT: return none || py::isinstance<Generator>(h);
  }
  return false;
}

Value scalar_value(py::handle h) {
  if (is_tensor(h)) {
    Tensor t = unwrap(h);
    if (is_floating(t.dtype())) return Value::from_double(t.item_double());
    if (t.dtype() == DType::Bool) return Value::from_bool(t.item_double() != 0);
    return Value::from_int((int64_t)t.item_double());
  }
  if (PyBool_Check(h.ptr())) return Value::from_bool(h.ptr() == Py_True);
  if (PyLong_Check(h.ptr()) || (PyIndex_Check(h.ptr()) && !PyFloat_Check(h.ptr()))) return Value::from_int(to_int(h));
  return Value::from_double(py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>());
}

Shape int_list(py::handle h) {
  if (is_int_like(h)) return {to_int(h)};
  Shape s;
  for (auto e : h) s.push_back(to_int(e));
  return s;
}

struct OpBinding {
  std::string pyname;
  std::vector<Overload> overloads;
};

std::vector<OpBinding*> g_bindings;  // leaked with the module

[[noreturn]] void no_match(const OpBinding& b, py::args args, py::kwargs kwargs, bool method) {
  std::string got;
  for (size_t i = method ? 1 : 0; i < args.size(); ++i) got += (got.empty() ? "" : ", ") + std::string(py::str(py::type::handle_of(args[i]).attr("__name__")));
  for (auto kv : kwargs) got += (got.empty() ? "" : ", ") + std::string(py::str(kv.first)) + "=" + std::string(py::str(py::type::handle_of(kv.second).attr("__name__")));
  std::string sigs;
  for (auto& o : b.overloads) sigs += std::string("\n  ") + op_def(o.id).name + ": " +  [&] {
      std::string s;
      for (auto& p : o.params) s += (s.empty() ? "" : ", ") + p.name;
      return s;
    }();
  throw py::type_error("[" + b.pyname + "] received an invalid combination of arguments: got (" + got + "), but expected one of:" + sigs);
}

py::object call_op(const OpBinding& b, py::args args, py::kwargs kwargs, bool method, bool inplace) {
  const size_t nargs = args.size();
  for (const Overload& ov : b.overloads) {
    const auto& ps = ov.params;
    std::vector<py::handle> bound(ps.size());
    std::vector<py::object> keep;  // owns temporaries (varargs tuples)
    bool ok = true;
    size_t ai = 0;
    size_t npos = 0;
    for (auto& p : ps) npos += !p.kwonly;
    for (size_t pi = 0; pi < ps.size() && ai < nargs; ++pi) {
      if (ps[pi].kwonly) { ok = false; break; }
      // int[] as varargs: x.view(2, 3), nd.empty(2, 3)
      if ((ps[pi].type == PT::IntList) && pi + 1 == npos && nargs - ai > 1) {
        py::tuple rest(nargs - ai);
        for (size_t k = 0; ai < nargs; ++ai, ++k) rest[k] = args[ai];
        keep.push_back(rest);
        bound[pi] = keep.back();
        break;
      }
      bound[pi] = args[ai++];
    }
    if (!ok || ai < nargs) continue;
    py::handle out_arg;
    for (auto kv : kwargs) {
      std::string k = py::str(kv.first);
      if (k == "out") { out_arg = kv.second; continue; }
      bool found = false;
      for (size_t pi = 0; pi < ps.size(); ++pi) {
        if (ps[pi].name == k || (!ps[pi].alias.empty() && ps[pi].alias == k)) {
          if (bound[pi]) { ok = false; break; }
          bound[pi] = kv.second;
          found = true;
          break;
        }
      }
      if (!found || !ok) { ok = false; break; }
    }
    if (!ok) continue;
    for (size_t pi = 0; pi < ps.size() && ok; ++pi) {
      if (!bound[pi]) {
        if (ps[pi].required) ok = false;
        continue;
      }
      ok = matches(ps[pi].type, bound[pi], pi == 0 && (method || ps[pi].name == "self"));
    }
    if (!ok) continue;

    // ---- bound: build the Call
    const OpDef& def = op_def(ov.id);
    Call call;
    call.op = ov.id;
    call.inplace = inplace;
    bool requires_grad = false;
    for (size_t pi = 0; pi < ps.size(); ++pi) {
      const Param& p = ps[pi];
      py::handle h = bound[pi] ? bound[pi] : py::handle(p.default_);
      if (p.name == "requires_grad") {
        requires_grad = h && PyObject_IsTrue(h.ptr());
        call.attrs.push_back(Value::from_bool(requires_grad));
        continue;
      }
      switch (p.type) {
        case PT::Tensor: call.inputs.push_back(to_tensor_arg(h, def.name, p.name.c_str())); break;
        case PT::OptTensor: call.inputs.push_back(!h || h.is_none() ? Tensor() : to_tensor_arg(h, def.name, p.name.c_str())); break;
        case PT::TensorList:
        case PT::OptTensorList: {
          int64_t n = 0;
          for (auto e : h) {
            call.inputs.push_back(e.is_none() ? Tensor() : (is_tensor(e) ? unwrap(e) : to_tensor_arg(e, def.name, p.name.c_str())));
            ++n;
          }
          call.attrs.push_back(Value::from_int(n));
          break;
        }
        case PT::Scalar: call.attrs.push_back(scalar_value(h)); break;
        case PT::OptScalar: call.attrs.push_back(!h || h.is_none() ? Value::none() : scalar_value(h)); break;
        case PT::Int: call.attrs.push_back(Value::from_int(to_int(h))); break;
        case PT::OptInt: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_int(to_int(h))); break;
        case PT::IntList: call.attrs.push_back(Value::from_list(int_list(h))); break;
        case PT::OptIntList: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_list(int_list(h))); break;
        case PT::Float: call.attrs.push_back(Value::from_double(py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>())); break;
        case PT::OptFloat: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_double(py::float_(py::reinterpret_borrow<py::object>(h)).cast<double>())); break;
        case PT::Bool: call.attrs.push_back(Value::from_bool(PyObject_IsTrue(h.ptr()))); break;
        case PT::OptBool: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_bool(PyObject_IsTrue(h.ptr()))); break;
        case PT::Str: call.attrs.push_back(Value::from_str(h.cast<std::string>())); break;
        case PT::OptStr: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_str(h.cast<std::string>())); break;
        case PT::DTypeT: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_dtype(to_dtype(h))); break;
        case PT::DeviceT: call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_device(to_device(h))); break;
        case PT::GeneratorT:
          call.attrs.push_back(!h || h.is_none() ? Value::none() : Value::from_object(h.cast<std::shared_ptr<Generator>>()));
          break;
      }
    }
    if (inplace) call.outputs.push_back(call.inputs.at(0));
    if (out_arg) {
      if (inplace) throw py::type_error("[" + b.pyname + "_] does not take out=");
      if (is_tensor(out_arg)) {
        call.outputs.push_back(unwrap(out_arg));
      } else {
        for (auto e : out_arg) call.outputs.push_back(unwrap(e));
      }
      for (auto& t : call.outputs)
        if (t.requires_grad() && grad_enabled())
          throw py::value_error("[" + b.pyname + "] out= arguments don't support automatic differentiation, but one of the arguments requires grad");
    }
    int64_t work = 0;
    for (auto& t : call.inputs) work += t.defined() ? t.numel() : 0;
    if (work >= 32768) {  // let other Python threads run during large kernels
      py::gil_scoped_release nogil;
      dispatch(call);
    } else {
      dispatch(call);
    }
    if (out_arg) {
      for (auto& t : call.outputs) t.bump_version();
      return py::reinterpret_borrow<py::object>(out_arg);
    }
    py::object result;
    if (call.outputs.size() == 1 || !ov.result_type) {
      result = wrap(call.outputs.at(0));
    } else {
      py::tuple items(call.outputs.size());
      for (size_t i = 0; i < call.outputs.size(); ++i) items[i] = wrap(call.outputs[i]);
      result = ov.result_type(*items);
    }
    if (requires_grad) result.attr("requires_grad_")(true);
    return result;
  }
  no_match(b, args, kwargs, method);
}

// Attribute values of an op's defaults, for the operator fast path (x + y skips the parser).
std::vector<Value> default_attrs(const OpDef& d) {
  std::vector<Value> out;
  for (const auto& p : d.params) {
    std::string t = p.type;
    if (t.rfind("Tensor", 0) == 0) continue;
    std::string v = p.default_ ? p.default_ : "None";
    if (v == "None") out.push_back(Value::none());
    else if (v == "True" || v == "False") out.push_back(Value::from_bool(v == "True"));
    else if (v.find('.') != std::string::npos) out.push_back(Value::from_double(std::stod(v)));
    else out.push_back(Value::from_int(std::stoll(v)));
  }
  return out;
}

py::object not_implemented() { return py::reinterpret_borrow<py::object>(Py_NotImplemented); }

bool is_operand(py::handle h) {
  return is_tensor(h) || PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr()) ||
         (!PySequence_Check(h.ptr()) && PyObject_HasAttrString(h.ptr(), "dtype") && PyObject_HasAttrString(h.ptr(), "item"));
}

// a OP b for Python operators: no overload resolution, no kwargs.
py::object binary_operator(OpId op, const std::vector<Value>& attrs, py::handle self, py::handle other, bool reflected, bool inplace) {
  if (!is_operand(other)) return not_implemented();
  Tensor a = unwrap(self);
  Tensor b = to_tensor_arg(other, op_def(op).name, "other");
  Call c;
  c.op = op;
  c.inputs.reserve(2);
  if (reflected) {
    c.inputs.push_back(b);
    c.inputs.push_back(a);
  } else {
    c.inputs.push_back(a);
    c.inputs.push_back(b);
  }
  c.attrs = attrs;
  c.inplace = inplace;
  if (inplace) c.outputs.push_back(a);
  if (a.numel() + b.numel() >= 32768) {
    py::gil_scoped_release nogil;
    dispatch(c);
  } else {
    dispatch(c);
  }
  if (inplace) return py::reinterpret_borrow<py::object>(self);
  return wrap(c.outputs[0]);
}

void def_operators(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  struct Spec { const char* dunder; const char* op; bool reflected; bool inplace; };
  static const Spec specs[] = {
      {"__add__", "add", false, false}, {"__radd__", "add", true, false}, {"__iadd__", "add", false, true},
      {"__sub__", "sub", false, false}, {"__rsub__", "sub", true, false}, {"__isub__", "sub", false, true},
      {"__mul__", "mul", false, false}, {"__rmul__", "mul", true, false}, {"__imul__", "mul", false, true},
      {"__truediv__", "div", false, false}, {"__rtruediv__", "div", true, false}, {"__itruediv__", "div", false, true},
      {"__floordiv__", "floor_divide", false, false}, {"__rfloordiv__", "floor_divide", true, false},
      {"__ifloordiv__", "floor_divide", false, true},
      {"__mod__", "remainder", false, false}, {"__rmod__", "remainder", true, false}, {"__imod__", "remainder", false, true},
      {"__pow__", "pow", false, false}, {"__rpow__", "pow", true, false}, {"__ipow__", "pow", false, true},
      {"__matmul__", "matmul", false, false}, {"__rmatmul__", "matmul", true, false},
      {"__and__", "bitwise_and", false, false}, {"__rand__", "bitwise_and", true, false}, {"__iand__", "bitwise_and", false, true},
      {"__or__", "bitwise_or", false, false}, {"__ror__", "bitwise_or", true, false}, {"__ior__", "bitwise_or", false, true},
      {"__xor__", "bitwise_xor", false, false}, {"__rxor__", "bitwise_xor", true, false}, {"__ixor__", "bitwise_xor", false, true},
      {"__lshift__", "bitwise_left_shift", false, false}, {"__rshift__", "bitwise_right_shift", false, false},
      {"__eq__", "eq", false, false}, {"__ne__", "ne", false, false}, {"__lt__", "lt", false, false},
      {"__le__", "le", false, false}, {"__gt__", "gt", false, false}, {"__ge__", "ge", false, false},
  };
  for (const Spec& s : specs) {
    OpId id = op_id(s.op);
    auto attrs = default_attrs(op_def(id));
    bool reflected = s.reflected, inplace = s.inplace;
    cls.def(s.dunder, [id, attrs, reflected, inplace](py::handle self, py::handle other) {
      return binary_operator(id, attrs, self, other, reflected, inplace);
    }, py::is_operator());
  }
}

py::args with_self(py::handle self, const py::args& a) {
  py::tuple t(a.size() + 1);
  t[0] = self;
  for (size_t i = 0; i < a.size(); ++i) t[i + 1] = a[i];
  return py::reinterpret_steal<py::args>(t.release());
}

}  // namespace

void init_ops(py::module_& m, py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  std::vector<std::string> order;
  std::unordered_map<std::string, OpBinding*> by_name;
  const auto& table = op_table();
  auto make_overload = [&](OpId id) {
    const OpDef& d = op_def(id);
    Overload ov;
    ov.id = id;
    for (const auto& ps : d.params) {
      Param p;
      p.name = ps.name;
      p.alias = ps.alias ? ps.alias : "";
      p.type = parse_type(ps.type);
      p.required = ps.default_ == nullptr;
      p.kwonly = ps.kwonly;
      p.is_tensor = p.type == PT::Tensor || p.type == PT::OptTensor;
      p.default_ = parse_default(ps.default_, p.type);
      ov.params.push_back(p);
    }
    if (d.returns.size() > 1) {
      py::list fields;
      for (auto r : d.returns) fields.append(r);
      ov.result_type = namedtuple(d.pyname, fields);
    }
    return ov;
  };
  auto add = [&](const std::string& pyname, Overload ov) {
    auto it = by_name.find(pyname);
    if (it == by_name.end()) {
      auto* b = new OpBinding{pyname, {}};
      g_bindings.push_back(b);
      it = by_name.emplace(pyname, b).first;
      order.push_back(pyname);
    }
    it->second->overloads.push_back(std::move(ov));
  };
  for (size_t i = 0; i < table.size(); ++i) add(table[i].pyname, make_overload((OpId)i));
  // Alias overloads (max(Tensor, Tensor) runs maximum) come last, after the name's own ops.
  for (const auto& a : op_aliases()) {
    OpId target = op_id(a.target);
    if (target < 0) throw std::runtime_error(std::string("op alias to unknown op ") + a.target);
    Overload ov = make_overload(target);
    ov.alias = true;
    add(a.pyname, std::move(ov));
  }
  for (const auto& name : order) {
    OpBinding* b = by_name[name];
    uint32_t variants = 0;
    for (auto& ov : b->overloads)
      if (!ov.alias) variants |= op_def(ov.id).variants;
    std::string doc = "nd." + name + ": see the op table (ops/ops.yaml)";
    if (variants & kFunction)
      m.def(name.c_str(), [b](py::args a, py::kwargs k) { return call_op(*b, a, k, false, false); }, doc.c_str());
    if (variants & kMethod)
      cls.def(name.c_str(), [b](py::object self, py::args a, py::kwargs k) { return call_op(*b, with_self(self, a), k, true, false); }, doc.c_str());
    if (variants & kHasInplace) {
      std::string iname = name + "_";
      cls.def(iname.c_str(), [b](py::object self, py::args a, py::kwargs k) { return call_op(*b, with_self(self, a), k, true, true); }, doc.c_str());
    }
  }
  def_operators(cls);
  m.def("_op_overloads", [by_name](const std::string& name) {
    std::vector<std::string> r;
    auto it = by_name.find(name);
    if (it != by_name.end())
      for (auto& ov : it->second->overloads) r.push_back(op_def(ov.id).name);
    return r;
  });
}

}  // namespace nd
