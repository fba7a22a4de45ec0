// dispatch.h owns the single dispatch point every op goes through (from Python and from C++),
// the op registry filled from the generated op table, the hook slots later packages register
// into (autograd, profiler, debug checks) and the device registry.
//
// Note [One dispatch point]
// nd::dispatch(Call&) resolves the device of the inputs, runs the device's kernel, bumps the
// version of written tensors, and then runs the hooks. Hooks cost one relaxed load when none is
// set. The autograd hook runs only when grad mode is on and some input requires grad, so ops on
// plain tensors never pay for autograd even with ndgrad imported. Because C++ extensions call
// the same functions (ops_gen.h), their ops are recorded by autograd and the profiler too.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tensor.h"

namespace nd {

// A non-tensor argument of an op. Lists are int lists (sizes, dims); DType travels as Int.
struct Value {
  enum class Kind : uint8_t { None, Bool, Int, Double, IntList, Str, DType, Device, Object } kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  Shape list;
  std::string s;
  Device dev;
  std::shared_ptr<void> obj;  // e.g. a Generator

  Value() = default;
  static Value none() { return Value(); }
  static Value from_bool(bool v) { Value x; x.kind = Kind::Bool; x.b = v; return x; }
  static Value from_int(int64_t v) { Value x; x.kind = Kind::Int; x.i = v; return x; }
  static Value from_double(double v) { Value x; x.kind = Kind::Double; x.d = v; return x; }
  static Value from_list(Shape v) { Value x; x.kind = Kind::IntList; x.list = std::move(v); return x; }
  static Value from_str(std::string v) { Value x; x.kind = Kind::Str; x.s = std::move(v); return x; }
  static Value from_dtype(DType t) { Value x; x.kind = Kind::DType; x.i = (int64_t)t; return x; }
  static Value from_opt_dtype(std::optional<DType> t) { return t ? from_dtype(*t) : none(); }
  static Value from_device(Device d) { Value x; x.kind = Kind::Device; x.dev = d; return x; }
  static Value from_object(std::shared_ptr<void> o) {
    Value x;
    if (o) { x.kind = Kind::Object; x.obj = std::move(o); }
    return x;
  }
  bool is_none() const { return kind == Kind::None; }
  double to_double() const { return kind == Kind::Double ? d : kind == Kind::Bool ? (double)b : (double)i; }
  int64_t to_int() const { return kind == Kind::Double ? (int64_t)d : kind == Kind::Bool ? (int64_t)b : i; }
  DType to_dtype() const { return (DType)i; }
};

using OpId = int32_t;

struct Call {
  OpId op = -1;
  std::vector<Tensor> inputs;   // undefined entries are optional tensors passed as None
  std::vector<Value> attrs;     // in the order of the op's signature
  std::vector<Tensor> outputs;  // prefilled with `out=` tensors; kernels fill the rest
  bool inplace = false;         // the `name_` variant: outputs[0] is inputs[0]
  const char* name() const;
  // Attribute lookup by position, as declared in the op's signature.
  const Value& attr(size_t i) const { return attrs.at(i); }
};

using CpuKernel = void (*)(Call&);

enum OpFlags : uint32_t {
  kInplace = 1,     // an op whose name ends in `_`: writes inputs[0] and returns it
  kNoAutograd = 2,  // integer/bool results or creation: never recorded
  kCreation = 4,    // takes no tensor input; device comes from the `device` attr
  kView = 8,        // result aliases inputs[0]; the kernel only computes metadata, on any device
  kCrossDevice = 16,  // copies between devices: runs where inputs[0] lives, others may differ
};
enum OpVariants : uint32_t { kFunction = 1, kMethod = 2, kHasInplace = 4 };
// The op table's `autocast` column: which of torch's CPU autocast lists a row is on.
enum AutocastKind : uint8_t { kAutocastNone = 0, kAutocastLower = 1, kAutocastFp32 = 2, kAutocastPromote = 3 };

struct ParamSpec {
  const char* name;
  const char* alias;    // array-API spelling (axis, keepdims) or null
  const char* type;     // schema type: Tensor, Tensor?, Tensor[], Scalar, int[]?, ...
  const char* default_; // schema default text, null when required
  bool kwonly;
};

struct OpDef {
  const char* name;    // unique op name, `max.dim` for overloads
  const char* pyname;  // the Python-visible name shared by overloads
  std::vector<const char*> attr_names;
  std::vector<ParamSpec> params;
  std::vector<const char*> returns;
  uint32_t flags;
  uint32_t variants;
  CpuKernel cpu;
  uint8_t autocast = kAutocastNone;
};

const std::vector<OpDef>& op_table();
// Overloads of a Python name that run another op: {pyname, target op name}.
struct OpAlias {
  const char* pyname;
  const char* target;
};
const std::vector<OpAlias>& op_aliases();
OpId op_id(const std::string& name);  // -1 if unknown
const OpDef& op_def(OpId id);

void dispatch(Call& call);
// Whether the running kernel's inputs are all Python numbers (Note [Arithmetic on numbers]).
bool numbers_only_call();
// Convenience for single-output ops; `inplace` writes and returns inputs[0].
Tensor dispatch1(OpId op, std::vector<Tensor> inputs, std::vector<Value> attrs, bool inplace = false);

// ---- hooks ---------------------------------------------------------------------------------
using AutogradHook = void (*)(Call& call);
using ProfileBegin = void* (*)(const Call& call);
using ProfileEnd = void (*)(void* token, const Call& call);
using CheckHook = void (*)(const Call& call);  // debug checks (NaN detection, ...)

void set_autograd_hook(AutogradHook hook);
AutogradHook autograd_hook();
// Runs before an in-place op that autograd will record, so it can save what the op overwrites.
void set_autograd_pre_hook(AutogradHook hook);
void set_profiler_hooks(ProfileBegin begin, ProfileEnd end);
void set_check_hook(CheckHook hook);
bool grad_enabled();            // thread-local grad mode, owned here so C++ sees it too
void set_grad_enabled(bool on);

// ---- autocast (mixed precision) --------------------------------------------------------------
// Note [Autocast in the dispatcher]
// A thread-local state per device type says whether autocast is on and its lower-precision
// dtype. dispatch() casts the floating inputs of rows on an autocast list before running them
// (lower: float32/16-bit -> the autocast dtype; fp32: 16-bit -> float32; promote: to the widest
// float input; float64 is never touched) through the ordinary _to_copy op, at the caller's depth,
// so autograd records the casts and gradients flow back in the parameters' dtype. Ops that
// kernels call internally (depth > 0) are never cast.
void set_autocast_state(int16_t device_type, bool enabled, DType dtype);
bool autocast_enabled(int16_t device_type);
DType autocast_dtype(int16_t device_type);
bool autocast_any();  // some device type has autocast on in this thread (the fast-path check)
// Casts `inputs` as autocast would for a row of `kind` (composite rows call this from Python).
void autocast_inputs(AutocastKind kind, std::vector<Tensor>& inputs);

// Broadcast policy for rank promotion: 0 allow, 1 warn (via warn handler), 2 raise.
void set_rank_promotion_policy(int policy);
int rank_promotion_policy();
using WarnHandler = void (*)(const std::string& msg);
void set_warn_handler(WarnHandler handler);
void warn(const std::string& msg);

// ---- devices --------------------------------------------------------------------------------
// A device type other than cpu. ndcuda and test devices implement this (through the Python
// binding trampoline), so ndcore never learns about them at build time.
struct DeviceBackend {
  virtual ~DeviceBackend() = default;
  virtual std::shared_ptr<Storage> allocate(size_t nbytes, Device device) = 0;
  virtual void copy_from_cpu(const Tensor& dst, const Tensor& src_cpu_contiguous) = 0;
  virtual void copy_to_cpu(const Tensor& dst_cpu_contiguous, const Tensor& src) = 0;
  virtual void run(Call& call) = 0;
  virtual int device_count() = 0;
};

int16_t register_device_type(const std::string& name, std::shared_ptr<DeviceBackend> backend);
int16_t device_type_id(const std::string& name);  // -1 if unknown
std::string device_type_name(int16_t type);
DeviceBackend* device_backend(int16_t type);
std::vector<std::string> device_type_names();

}  // namespace nd
