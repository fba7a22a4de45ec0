#include "dispatch.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "ops_gen.h"
#include "scalar.h"

namespace nd {

std::vector<OpDef> make_op_table();  // op_table_gen.cpp
std::vector<OpAlias> make_op_aliases();  // op_table_gen.cpp

const std::vector<OpAlias>& op_aliases() {
  static const std::vector<OpAlias> aliases = make_op_aliases();
  return aliases;
}

const std::vector<OpDef>& op_table() {
  static const std::vector<OpDef> table = make_op_table();
  return table;
}
const OpDef& op_def(OpId id) { return op_table().at((size_t)id); }
OpId op_id(const std::string& name) {
  static const std::unordered_map<std::string, OpId> index = [] {
    std::unordered_map<std::string, OpId> m;
    const auto& t = op_table();
    for (size_t i = 0; i < t.size(); ++i) m.emplace(t[i].name, (OpId)i);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? -1 : it->second;
}
const char* Call::name() const { return op_def(op).name; }

Generator& default_generator() {
  static Generator g;
  return g;
}

// ---- hooks -----------------------------------------------------------------------------------
namespace {
std::atomic<AutogradHook> g_autograd{nullptr};
std::atomic<AutogradHook> g_autograd_pre{nullptr};
// Ops that kernels call internally (copy_into -> expand, reshape -> clone, ...) are part of the
// outer op: hooks see only depth-0 calls, so autograd records the op the user called.
thread_local int t_depth = 0;

// Note [Arithmetic on numbers]
// A Python number reaches an op as a wrapped 0-d tensor (float64 or int64) that never decides the
// result dtype against real tensors. When every input of a call is such a number, which happens
// only inside derivative formulas (`exponent - 1` for pow), the call computes in the numbers' own
// dtype, as Python would in double, and its result is again a wrapped number; otherwise `1/3 - 1`
// would be rounded to float32 (the default dtype) and a float64 gradient would lose precision.
// result_type reads the flag; dispatch sets it around such a call's kernel.
thread_local bool t_numbers_only = false;
struct NumbersOnlyGuard {
  bool prev;
  explicit NumbersOnlyGuard(bool on) : prev(t_numbers_only) { t_numbers_only = on; }
  ~NumbersOnlyGuard() { t_numbers_only = prev; }
};
struct DepthGuard {
  DepthGuard() { ++t_depth; }
  ~DepthGuard() { --t_depth; }
};
std::atomic<ProfileBegin> g_prof_begin{nullptr};
std::atomic<ProfileEnd> g_prof_end{nullptr};
std::atomic<CheckHook> g_check{nullptr};
std::atomic<int> g_rank_policy{0};
std::atomic<WarnHandler> g_warn{nullptr};
thread_local bool t_grad_enabled = true;
constexpr int kAutocastSlots = 8;  // device types beyond this never autocast
struct AutocastState {
  bool any = false;
  bool enabled[kAutocastSlots] = {};
  DType dtype[kAutocastSlots] = {DType::BFloat16, DType::Float16, DType::Float16, DType::Float16,
                                 DType::Float16,  DType::Float16, DType::Float16, DType::Float16};
};
thread_local AutocastState t_autocast;
}  // namespace

void set_autograd_hook(AutogradHook hook) { g_autograd.store(hook); }
void set_autograd_pre_hook(AutogradHook hook) { g_autograd_pre.store(hook); }
AutogradHook autograd_hook() { return g_autograd.load(std::memory_order_relaxed); }
void set_profiler_hooks(ProfileBegin begin, ProfileEnd end) {
  g_prof_end.store(end);
  g_prof_begin.store(begin);
}
void set_check_hook(CheckHook hook) { g_check.store(hook); }
bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool on) { t_grad_enabled = on; }
void set_rank_promotion_policy(int policy) { g_rank_policy.store(policy); }
int rank_promotion_policy() { return g_rank_policy.load(std::memory_order_relaxed); }
void set_warn_handler(WarnHandler handler) { g_warn.store(handler); }
void warn(const std::string& msg) {
  if (auto h = g_warn.load()) h(msg);
}

// ---- autocast: see Note [Autocast in the dispatcher] ----------------------------------------------
void set_autocast_state(int16_t device_type, bool enabled, DType dtype) {
  if (device_type < 0 || device_type >= kAutocastSlots)
    throw ValueError("[autocast] device type " + device_type_name(device_type) + " does not support autocast");
  if (enabled && dtype != DType::BFloat16 && dtype != DType::Float16)
    throw ValueError(std::string("[autocast] expected bfloat16 or float16 as the autocast dtype, got ") +
                     dtype_name(dtype));
  t_autocast.enabled[device_type] = enabled;
  t_autocast.dtype[device_type] = dtype;
  t_autocast.any = false;
  for (bool e : t_autocast.enabled) t_autocast.any |= e;
}
bool autocast_enabled(int16_t device_type) {
  return device_type >= 0 && device_type < kAutocastSlots && t_autocast.enabled[device_type];
}
DType autocast_dtype(int16_t device_type) {
  return device_type >= 0 && device_type < kAutocastSlots ? t_autocast.dtype[device_type] : DType::Float16;
}
bool autocast_any() { return t_autocast.any; }

void autocast_inputs(AutocastKind kind, std::vector<Tensor>& inputs) {
  if (kind == kAutocastNone || !t_autocast.any) return;
  auto eligible = [](const Tensor& t) {
    return t.defined() && is_floating(t.dtype()) && t.dtype() != DType::Float64 && autocast_enabled(t.device().type);
  };
  DType widest = DType::Float16;
  bool found = false;
  for (const auto& t : inputs)
    if (eligible(t)) {
      widest = found ? promote_types(widest, t.dtype()) : t.dtype();
      found = true;
    }
  if (!found) return;
  for (auto& t : inputs) {
    if (!eligible(t)) continue;
    DType to = kind == kAutocastLower ? autocast_dtype(t.device().type) : kind == kAutocastFp32 ? DType::Float32 : widest;
    if (t.dtype() != to) t = _to_copy(t, to);
  }
}

// ---- devices ----------------------------------------------------------------------------------
namespace {
struct DeviceRegistry {
  std::mutex mu;
  std::vector<std::string> names{"cpu"};
  std::vector<std::shared_ptr<DeviceBackend>> backends{nullptr};
};
DeviceRegistry& registry() {
  static auto* r = new DeviceRegistry();
  return *r;
}
}  // namespace

int16_t register_device_type(const std::string& name, std::shared_ptr<DeviceBackend> backend) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (size_t i = 0; i < r.names.size(); ++i)
    if (r.names[i] == name) {
      if (i == 0) throw ValueError("[register_device] 'cpu' is built in and cannot be replaced");
      r.backends[i] = std::move(backend);  // re-registration replaces (e.g. module reload)
      return (int16_t)i;
    }
  r.names.push_back(name);
  r.backends.push_back(std::move(backend));
  return (int16_t)(r.names.size() - 1);
}
int16_t device_type_id(const std::string& name) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (size_t i = 0; i < r.names.size(); ++i)
    if (r.names[i] == name) return (int16_t)i;
  return -1;
}
std::string device_type_name(int16_t type) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  return (size_t)type < r.names.size() ? r.names[type] : "unknown";
}
DeviceBackend* device_backend(int16_t type) {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  return (size_t)type < r.backends.size() ? r.backends[type].get() : nullptr;
}
std::vector<std::string> device_type_names() {
  auto& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  return r.names;
}

// ---- the dispatch point -------------------------------------------------------------------------
namespace {
// The device an op runs on. Wrapped Python numbers and 0-d CPU tensors may join tensors of any
// device (as in torch); any other mix is an error naming the op and both devices.
Device resolve_device(const Call& call, const OpDef& def) {
  if (def.flags & kCreation) {
    for (size_t i = 0; i < def.attr_names.size(); ++i)
      if (std::string(def.attr_names[i]) == "device" && call.attrs[i].kind == Value::Kind::Device)
        return call.attrs[i].dev;
    return Device{};
  }
  if (def.flags & kCrossDevice) return call.inputs[0].device();
  Device dev;
  bool found = false;
  for (const auto& t : call.inputs) {
    if (!t.defined()) continue;
    Device d = t.device();
    if (d.is_cpu() && t.dim() == 0) continue;
    if (!found) {
      dev = d;
      found = true;
    } else if (d != dev) {
      throw ValueError(std::string("[") + def.name + "] expected all tensors to be on the same device, but found " +
                       dev.str() + " and " + d.str());
    }
  }
  return dev;
}
}  // namespace

bool numbers_only_call() { return t_numbers_only; }

void dispatch(Call& call) {
  const OpDef& def = op_def(call.op);
  const bool outer = t_depth == 0;
  ProfileBegin pb = outer ? g_prof_begin.load(std::memory_order_relaxed) : nullptr;
  void* token = pb ? pb(call) : nullptr;
  const bool inplace = call.inplace || (def.flags & kInplace);
  if (def.autocast != kAutocastNone && t_autocast.any && outer && !inplace)  // Note [Autocast in the dispatcher]
    autocast_inputs((AutocastKind)def.autocast, call.inputs);

  AutogradHook ag = outer ? g_autograd.load(std::memory_order_relaxed) : nullptr;
  bool record = false;
  if (ag && t_grad_enabled && !(def.flags & kNoAutograd)) {
    for (const auto& t : call.inputs) record |= t.defined() && t.requires_grad();
  }
  if (record && inplace)
    if (AutogradHook pre = g_autograd_pre.load(std::memory_order_relaxed)) pre(call);

  Device dev = resolve_device(call, def);
  // Python numbers combined only with Python numbers (`exponent - 1` on a number a derivative
  // formula saved) compute as Python does and give a number: See Note [Arithmetic on numbers].
  bool numbers =
      !inplace && !call.inputs.empty() && call.inputs[0].defined() && call.inputs[0].impl()->wrapped_number;
  if (numbers)
    for (const auto& t : call.inputs) numbers &= !t.defined() || t.impl()->wrapped_number;
  {
    NumbersOnlyGuard numbers_only(numbers);
    DepthGuard depth;
    if (dev.is_cpu() || (def.flags & kView)) {
      if (!def.cpu) throw NotImplementedError(std::string("[") + def.name + "] has no CPU kernel");
      def.cpu(call);
    } else {
      DeviceBackend* backend = device_backend(dev.type);
      if (!backend) throw ValueError(std::string("[") + def.name + "] device type " + dev.str() + " is not registered");
      backend->run(call);
    }
  }
  if (inplace) {
    if (call.outputs.empty()) call.outputs.push_back(call.inputs[0]);
    call.inputs[0].bump_version();
  } else if (numbers) {
    for (auto& o : call.outputs)
      if (o.defined() && o.dim() == 0) o.impl()->wrapped_number = true;
  }

  if (outer)
    if (CheckHook ch = g_check.load(std::memory_order_relaxed)) ch(call);
  if (record) ag(call);
  if (token) g_prof_end.load()(token, call);
}

Tensor dispatch1(OpId op, std::vector<Tensor> inputs, std::vector<Value> attrs, bool inplace) {
  Call c;
  c.op = op;
  c.inputs = std::move(inputs);
  c.attrs = std::move(attrs);
  c.inplace = inplace;
  if (inplace) c.outputs.push_back(c.inputs.at(0));
  dispatch(c);
  return c.outputs.at(0);
}

// ---- type promotion ----------------------------------------------------------------------------
DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::Bool) return b;
  if (b == DType::Bool) return a;
  bool fa = is_floating(a), fb = is_floating(b);
  if (fa && !fb) return a;
  if (fb && !fa) return b;
  if (fa && fb) {
    if ((a == DType::Float16 && b == DType::BFloat16) || (a == DType::BFloat16 && b == DType::Float16))
      return DType::Float32;
    return itemsize(a) >= itemsize(b) ? (a == DType::Float16 || a == DType::BFloat16 ? b : a) : b;
  }
  // integers
  if (a == DType::UInt8 || b == DType::UInt8) {
    DType other = a == DType::UInt8 ? b : a;
    return other == DType::Int8 ? DType::Int16 : other;
  }
  return itemsize(a) >= itemsize(b) ? a : b;
}

}  // namespace nd
