// Python ends of the dispatcher's autocast state (Note [Autocast in the dispatcher]); ndnn.amp
// builds the autocast context manager on them.
#include "py_tensor.h"

namespace nd {
namespace {

int16_t autocast_device(const std::string& device_type) {
  int16_t type = device_type_id(device_type);
  if (type < 0) throw py::value_error("[autocast] unknown device type '" + device_type + "'");
  return type;
}

AutocastKind autocast_kind(const std::string& kind) {
  if (kind == "lower") return kAutocastLower;
  if (kind == "fp32") return kAutocastFp32;
  if (kind == "promote") return kAutocastPromote;
  throw py::value_error("[autocast] unknown cast kind '" + kind + "', expected 'lower', 'fp32' or 'promote'");
}

}  // namespace

void init_autocast(py::module_& m) {
  m.def("_set_autocast_state", [](const std::string& device_type, bool enabled, py::handle dtype) {
    set_autocast_state(autocast_device(device_type), enabled, to_dtype(dtype));
  });
  m.def("_get_autocast_state", [](const std::string& device_type) {
    int16_t type = autocast_device(device_type);
    return py::make_tuple(autocast_enabled(type), dtype_object(autocast_dtype(type)));
  });
  m.def("_autocast_active", &autocast_any);
  // Casts the tensors of `args` (others pass through) as a row on list `kind` would be.
  m.def("_autocast_inputs", [](const std::string& kind, py::list args) {
    AutocastKind k = autocast_kind(kind);
    std::vector<Tensor> ts;
    std::vector<size_t> where;
    for (size_t i = 0; i < args.size(); ++i)
      if (is_tensor(args[i])) {
        ts.push_back(unwrap(args[i]));
        where.push_back(i);
      }
    autocast_inputs(k, ts);
    py::list out(args.size());
    for (size_t i = 0; i < args.size(); ++i) out[i] = args[i];
    for (size_t j = 0; j < where.size(); ++j) out[where[j]] = wrap(ts[j]);
    return out;
  });
}

}  // namespace nd
