// Table-driven op bindings: one generic argument parser reads each op's ParamSpecs (generated
// from ops/ops.yaml) and builds the nd::Call, so adding a row to the table adds the function,
// the method and the in-place variant with no binding code.
#include <array>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "py_tensor.h"
#include "../kernels/loops.h"

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
  py::object pyname, pyalias;  // interned, for keyword matching (alias null when none)
  PT type;
  bool required, kwonly, is_tensor, is_requires_grad;
  py::object default_;
};

struct Overload {
  OpId id;
  std::vector<Param> params;
  bool alias = false;  // another op's overload under this name: contributes no variants
  py::object result_type;  // namedtuple class for multi-output ops
  size_t npos = 0;             // parameters that may be given positionally
  size_t n_tensor_params = 0;  // a size hint for Call::inputs
  bool precast = false;        // (self, other, ...) arithmetic: See Note [Python numbers in the result dtype]
  bool number_self = false;    // the function form takes a Python number for self beside a tensor other
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

// Note [Python numbers in the result dtype]
// `x / 255` on a floating CPU tensor promotes to x's dtype whatever the number's kind (a wrapped
// number never wins over a floating tensor), and the kernel would cast the wrapped int64/float64
// 0-d tensor to that dtype with the same conversion (T(compute_type<T>(v))). Creating the number
// in that dtype directly skips one tensor and one copy per call. Only for ops whose compute dtype
// is the promoted dtype (not bitwise ops: their errors name the operand dtypes).
Tensor operand(py::handle other, const Tensor& self, OpId op, bool precast) {
  if (precast && is_floating(self.dtype()) && self.device().is_cpu()) {
    PyObject* o = other.ptr();
    if (PyFloat_CheckExact(o)) return scalar_tensor(PyFloat_AS_DOUBLE(o), self.dtype(), true);
    if (PyBool_Check(o)) return scalar_tensor(o == Py_True ? 1.0 : 0.0, self.dtype(), true);
    if (PyLong_CheckExact(o)) {
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
      if (!overflow) return scalar_tensor_int(v, self.dtype(), true);
    }
  }
  return to_tensor_arg(other, op_def(op).name, "other");
}

py::object out_key() {
  static py::object* k = new py::object(py::reinterpret_steal<py::object>(PyUnicode_InternFromString("out")));
  return *k;
}

// One call's arguments as CPython's vectorcall passes them (no tuple or dict is built); a
// method's `self` counts as the first positional argument.
struct Args {
  PyObject* self = nullptr;
  PyObject* const* pos = nullptr;
  size_t npos = 0;
  PyObject* kwnames = nullptr;  // keyword names; their values follow the positional ones
  size_t size() const { return npos + (self ? 1 : 0); }
  py::handle operator[](size_t i) const { return self ? (i == 0 ? self : pos[i - 1]) : pos[i]; }
  size_t nkw() const { return kwnames ? (size_t)PyTuple_GET_SIZE(kwnames) : 0; }
  PyObject* kw_name(size_t i) const { return PyTuple_GET_ITEM(kwnames, i); }
  py::handle kw_value(size_t i) const { return pos[npos + i]; }
};

std::string type_name(py::handle h) { return std::string(py::str(py::type::handle_of(h).attr("__name__"))); }

[[noreturn]] void no_match(const OpBinding& b, const Args& args, bool method) {
  std::string got;
  for (size_t i = method ? 1 : 0; i < args.size(); ++i) got += (got.empty() ? "" : ", ") + type_name(args[i]);
  for (size_t i = 0; i < args.nkw(); ++i)
    got += (got.empty() ? "" : ", ") + std::string(py::str(args.kw_name(i))) + "=" + type_name(args.kw_value(i));
  std::string sigs;
  for (auto& o : b.overloads) sigs += std::string("\n  ") + op_def(o.id).name + ": " +  [&] {
      std::string s;
      for (auto& p : o.params) s += (s.empty() ? "" : ", ") + p.name;
      return s;
    }();
  throw py::type_error("[" + b.pyname + "] received an invalid combination of arguments: got (" + got + "), but expected one of:" + sigs);
}

bool same_str(PyObject* a, const py::object& b) {
  if (!b) return false;
  if (a == b.ptr()) return true;
  // `b` is interned: an interned `a` equal to it would be the same object
  return !PyUnicode_CHECK_INTERNED(a) && PyUnicode_Compare(a, b.ptr()) == 0;
}

// Kernels that build their result (creation, random, many nn ops) replace call.outputs instead
// of writing the out= tensors; their results are copied (and cast, and an empty out resized) into
// the tensors the caller gave, so out= never silently keeps its old contents.
void write_out(Call& call, const std::vector<Tensor>& given) {
  bool same = call.outputs.size() == given.size();
  for (size_t i = 0; same && i < given.size(); ++i) same = call.outputs[i].impl() == given[i].impl();
  if (same) return;
  std::vector<Tensor> results = call.outputs;
  call.outputs = given;
  set_outputs(call, results);
}

constexpr size_t kMaxParams = 32;  // checked when the bindings are made

__attribute__((noinline)) py::object call_op(const OpBinding& b, const Args& args, bool method, bool inplace) {
  const size_t nargs = args.size();
  for (const Overload& ov : b.overloads) {
    const auto& ps = ov.params;
    py::handle bound[kMaxParams];
    py::object varargs;  // owns the tuple of int[] varargs
    bool ok = true;
    size_t ai = 0;
    for (size_t pi = 0; pi < ps.size() && ai < nargs; ++pi) {
      if (ps[pi].kwonly) { ok = false; break; }
      // int[] as varargs: x.view(2, 3), nd.empty(2, 3)
      if ((ps[pi].type == PT::IntList) && pi + 1 == ov.npos && nargs - ai > 1) {
        py::tuple rest(nargs - ai);
        for (size_t k = 0; ai < nargs; ++ai, ++k) rest[k] = args[ai];
        varargs = rest;
        bound[pi] = varargs;
        break;
      }
      bound[pi] = args[ai++];
    }
    if (!ok || ai < nargs) continue;
    py::handle out_arg;
    for (size_t j = 0; j < args.nkw() && ok; ++j) {
      PyObject* k = args.kw_name(j);
      if (same_str(k, out_key())) { out_arg = args.kw_value(j); continue; }
      bool found = false;
      for (size_t pi = 0; pi < ps.size(); ++pi) {
        if (same_str(k, ps[pi].pyname) || same_str(k, ps[pi].pyalias)) {
          if (bound[pi]) { ok = false; break; }
          bound[pi] = args.kw_value(j);
          found = true;
          break;
        }
      }
      ok = ok && found;
    }
    if (!ok) continue;
    for (size_t pi = 0; pi < ps.size() && ok; ++pi) {
      if (!bound[pi]) {
        if (ps[pi].required) ok = false;
        continue;
      }
      bool tensor_only = pi == 0 && (method || ps[pi].name == "self");
      if (tensor_only && !method && ov.number_self && bound[1] && is_tensor(bound[1])) tensor_only = false;
      ok = matches(ps[pi].type, bound[pi], tensor_only);
    }
    if (!ok) continue;

    // ---- bound: build the Call
    const OpDef& def = op_def(ov.id);
    Call call;
    call.op = ov.id;
    call.inplace = inplace;
    call.inputs.reserve(ov.n_tensor_params);
    call.attrs.reserve(ps.size());
    bool requires_grad = false;
    for (size_t pi = 0; pi < ps.size(); ++pi) {
      const Param& p = ps[pi];
      py::handle h = bound[pi] ? bound[pi] : py::handle(p.default_);
      if (p.is_requires_grad) {
        requires_grad = h && PyObject_IsTrue(h.ptr());
        call.attrs.push_back(Value::from_bool(requires_grad));
        continue;
      }
      switch (p.type) {
        case PT::Tensor:
          // See Note [Python numbers in the result dtype]
          call.inputs.push_back(ov.precast && pi == 1 ? operand(h, call.inputs[0], ov.id, true) : to_tensor_arg(h, def.name, p.name.c_str()));
          break;
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
    std::vector<Tensor> given_out;
    if (out_arg) {
      if (inplace) throw py::type_error("[" + b.pyname + "_] does not take out=");
      if (is_tensor(out_arg)) {
        call.outputs.push_back(unwrap(out_arg));
      } else {
        for (auto e : out_arg) call.outputs.push_back(unwrap(e));
      }
      given_out = call.outputs;
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
      write_out(call, given_out);
      for (auto& t : call.outputs) t.bump_version();
      return py::reinterpret_borrow<py::object>(out_arg);
    }
    if (inplace && args.self && call.outputs.size() == 1 && call.outputs[0].impl() == call.inputs[0].impl())
      return py::reinterpret_borrow<py::object>(args.self);
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
  no_match(b, args, method);
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
py::object binary_operator(OpId op, const std::vector<Value>& attrs, py::handle self, py::handle other, bool reflected,
                           bool inplace, bool precast = false) {
  if (!is_operand(other)) return not_implemented();
  Tensor a = unwrap(self);
  Tensor b = operand(other, a, op, precast);
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

// Note [Operator slots]
// Through pybind11, `a + b` costs a type-dict lookup of __add__ (CPython's generic slot) and
// pybind11's dispatcher (argument loaders, overload loop, holder casts): a third of a small op.
// The Tensor type's number and comparison slots call binary_operator directly instead. The dunder
// methods stay in the class dict for explicit calls and for Python subclasses, whose slots
// CPython derives from that dict.
struct SlotOp {
  OpId id = -1;
  std::vector<Value> attrs;
  bool precast = false;  // See Note [Python numbers in the result dtype]
};
enum SlotKind { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow, kMatmul, kAnd, kOr, kXor, kLshift, kRshift, kNumSlotOps };
SlotOp g_slot_ops[kNumSlotOps];
SlotOp g_cmp_ops[6];  // by CPython's comparison code, Py_LT ... Py_GE

// CPython calls a number slot for `a OP b` with the operands in order whichever of them is the
// Tensor; the reflected form (`1 - x`) is the call where `a` is not one.
template <int K, bool Reflectable>
PyObject* nb_binary(PyObject* a, PyObject* b) {
  return guarded([&] {
    const SlotOp& s = g_slot_ops[K];
    if (is_tensor(a)) return binary_operator(s.id, s.attrs, a, b, false, false, s.precast);
    if (!Reflectable) return not_implemented();
    return binary_operator(s.id, s.attrs, b, a, true, false, s.precast);
  });
}
template <int K>
PyObject* nb_inplace(PyObject* a, PyObject* b) {
  return guarded([&] {
    const SlotOp& s = g_slot_ops[K];
    return binary_operator(s.id, s.attrs, a, b, false, true, s.precast);
  });
}
PyObject* nb_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
  return nb_binary<kPow, true>(a, b);
}
PyObject* nb_inplace_power(PyObject* a, PyObject* b, PyObject* mod) {
  if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
  return nb_inplace<kPow>(a, b);
}
PyObject* tp_richcompare(PyObject* a, PyObject* b, int cmp) {
  if (cmp < 0 || cmp >= 6) Py_RETURN_NOTIMPLEMENTED;
  return guarded([&] {
    const SlotOp& s = g_cmp_ops[cmp];
    return binary_operator(s.id, s.attrs, a, b, false, false, s.precast);
  });
}

void install_operator_slots(py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  auto slot = [](const char* op, bool precast) {
    OpId id = op_id(op);
    return SlotOp{id, default_attrs(op_def(id)), precast};
  };
  g_slot_ops[kAdd] = slot("add", true);
  g_slot_ops[kSub] = slot("sub", true);
  g_slot_ops[kMul] = slot("mul", true);
  g_slot_ops[kDiv] = slot("div", true);
  g_slot_ops[kFloorDiv] = slot("floor_divide", true);
  g_slot_ops[kMod] = slot("remainder", true);
  g_slot_ops[kPow] = slot("pow", true);
  g_slot_ops[kMatmul] = slot("matmul", false);
  g_slot_ops[kAnd] = slot("bitwise_and", false);
  g_slot_ops[kOr] = slot("bitwise_or", false);
  g_slot_ops[kXor] = slot("bitwise_xor", false);
  g_slot_ops[kLshift] = slot("bitwise_left_shift", false);
  g_slot_ops[kRshift] = slot("bitwise_right_shift", false);
  g_cmp_ops[Py_LT] = slot("lt", true);
  g_cmp_ops[Py_LE] = slot("le", true);
  g_cmp_ops[Py_EQ] = slot("eq", true);
  g_cmp_ops[Py_NE] = slot("ne", true);
  g_cmp_ops[Py_GT] = slot("gt", true);
  g_cmp_ops[Py_GE] = slot("ge", true);

  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  PyNumberMethods* nb = type->tp_as_number;
  nb->nb_add = nb_binary<kAdd, true>;
  nb->nb_subtract = nb_binary<kSub, true>;
  nb->nb_multiply = nb_binary<kMul, true>;
  nb->nb_true_divide = nb_binary<kDiv, true>;
  nb->nb_floor_divide = nb_binary<kFloorDiv, true>;
  nb->nb_remainder = nb_binary<kMod, true>;
  nb->nb_power = nb_power;
  nb->nb_matrix_multiply = nb_binary<kMatmul, true>;
  nb->nb_and = nb_binary<kAnd, true>;
  nb->nb_or = nb_binary<kOr, true>;
  nb->nb_xor = nb_binary<kXor, true>;
  nb->nb_lshift = nb_binary<kLshift, false>;  // no __rlshift__, as torch
  nb->nb_rshift = nb_binary<kRshift, false>;
  nb->nb_inplace_add = nb_inplace<kAdd>;
  nb->nb_inplace_subtract = nb_inplace<kSub>;
  nb->nb_inplace_multiply = nb_inplace<kMul>;
  nb->nb_inplace_true_divide = nb_inplace<kDiv>;
  nb->nb_inplace_floor_divide = nb_inplace<kFloorDiv>;
  nb->nb_inplace_remainder = nb_inplace<kMod>;
  nb->nb_inplace_power = nb_inplace_power;
  nb->nb_inplace_and = nb_inplace<kAnd>;
  nb->nb_inplace_or = nb_inplace<kOr>;
  nb->nb_inplace_xor = nb_inplace<kXor>;
  type->tp_richcompare = tp_richcompare;
  nb->nb_negative = [](PyObject* a) { return guarded([&] { return wrap(nd::neg(unwrap(a))); }); };
  nb->nb_absolute = [](PyObject* a) { return guarded([&] { return wrap(nd::abs(unwrap(a))); }); };
  nb->nb_positive = [](PyObject* a) {
    Py_INCREF(a);
    return a;
  };
  PyType_Modified(type);
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
  cls.def("__neg__", [](py::handle self) { return wrap(nd::neg(unwrap(self))); });
  cls.def("__abs__", [](py::handle self) { return wrap(nd::abs(unwrap(self))); });
  cls.def("__pos__", [](py::handle self) { return py::reinterpret_borrow<py::object>(self); });
  install_operator_slots(cls);
}

// Note [Vectorcall entry points]
// Each op's function, method and in-place method is a METH_FASTCALL | METH_KEYWORDS builtin, so
// CPython builds no argument tuple or dict and pybind11's dispatcher is skipped. CPython hands
// such a function no pointer to data of its own, so each binding gets its own entry point: the
// I-th instance of `entry` serves g_entries[I].
struct Entry {
  const OpBinding* b;
  bool method, inplace;
};
constexpr size_t kMaxEntries = 1024;
Entry g_entries[kMaxEntries];
size_t g_num_entries = 0;
using FastFn = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);

__attribute__((noinline)) PyObject* run_entry(size_t i, PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return guarded([&] {
    const Entry& e = g_entries[i];
    Args a;
    a.self = e.method ? self : nullptr;
    a.pos = args;
    a.npos = (size_t)nargs;
    a.kwnames = kwnames;
    return call_op(*e.b, a, e.method, e.inplace);
  });
}
template <size_t I>
PyObject* entry(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return run_entry(I, self, args, nargs, kwnames);
}
template <size_t... I>
std::array<FastFn, sizeof...(I)> make_entries(std::index_sequence<I...>) {
  return {{&entry<I>...}};
}
const std::array<FastFn, kMaxEntries> g_entry_fns = make_entries(std::make_index_sequence<kMaxEntries>());

PyMethodDef* new_entry(const std::string& name, const std::string& doc, const OpBinding* b, bool method, bool inplace) {
  if (g_num_entries == kMaxEntries) throw std::runtime_error("ndcore: more op bindings than kMaxEntries");
  g_entries[g_num_entries] = Entry{b, method, inplace};
  // leaked with the module: CPython keeps pointers to the def and its strings
  auto* def = new PyMethodDef{strdup(name.c_str()), (PyCFunction)(void (*)())g_entry_fns[g_num_entries++],
                              METH_FASTCALL | METH_KEYWORDS, strdup(doc.c_str())};
  return def;
}

}  // namespace

void init_ops(py::module_& m, py::class_<TensorImpl, std::shared_ptr<TensorImpl>>& cls) {
  py::object namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object modname = m.attr("__name__");
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
      p.is_requires_grad = p.name == "requires_grad";
      p.pyname = py::reinterpret_steal<py::object>(PyUnicode_InternFromString(ps.name));
      if (ps.alias) p.pyalias = py::reinterpret_steal<py::object>(PyUnicode_InternFromString(ps.alias));
      ov.npos += !p.kwonly;
      ov.n_tensor_params += p.is_tensor;
      ov.params.push_back(p);
    }
    if (ov.params.size() > kMaxParams) throw std::runtime_error(std::string("op ") + d.name + " has more than kMaxParams parameters");
    static const char* const precast_ops[] = {"add", "sub", "mul", "div", "floor_divide", "remainder",
                                              "eq", "ne", "lt", "le", "gt", "ge"};
    for (const char* name : precast_ops)
      ov.precast |= std::string(d.name) == name;
    ov.precast = ov.precast && ov.params.size() >= 2 && ov.params[0].type == PT::Tensor && ov.params[1].type == PT::Tensor &&
                 ov.params[1].name == "other";
    // torch's parser lets these functions take a number as their first operand when the second
    // is a tensor (torch.mul(0.5, x), torch.pow(2, x)); the number joins as a wrapped number
    static const char* const number_self_ops[] = {"add", "sub", "mul", "div", "floor_divide", "remainder", "pow"};
    for (const char* name : number_self_ops)
      ov.number_self |= std::string(d.name) == name;
    ov.number_self = ov.number_self && ov.params.size() >= 2 && ov.params[0].type == PT::Tensor &&
                     ov.params[1].type == PT::Tensor;
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
    if (variants & kFunction) {
      py::object f = py::reinterpret_steal<py::object>(PyCFunction_NewEx(new_entry(name, doc, b, false, false), m.ptr(), modname.ptr()));
      if (!f) throw py::error_already_set();
      m.attr(name.c_str()) = f;
    }
    if (variants & kMethod) add_fast_method(cls, new_entry(name, doc, b, true, false));
    if (variants & kHasInplace) add_fast_method(cls, new_entry(name + "_", doc, b, true, true));
  }
  def_operators(cls);
  // For Python-level creation functions (rand, randn, empty, ...): the out= rule of write_out.
  m.def("_write_out", [](const std::string& op, py::handle out, py::handle result) {
    Call c;
    OpId id = op_id(op);
    if (id < 0) throw py::value_error("[_write_out] unknown op " + op);
    c.op = id;
    c.outputs = {unwrap(out)};
    set_outputs(c, {unwrap(result)});
    c.outputs[0].bump_version();
    return py::reinterpret_borrow<py::object>(out);
  });
  m.def("_op_overloads", [by_name](const std::string& name) {
    std::vector<std::string> r;
    auto it = by_name.find(name);
    if (it != by_name.end())
      for (auto& ov : it->second->overloads) r.push_back(op_def(ov.id).name);
    return r;
  });
}

}  // namespace nd
