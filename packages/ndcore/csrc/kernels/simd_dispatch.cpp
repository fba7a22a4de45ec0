// Run-time ISA level for the kernels' variants (see Note [ISA variants] in simd_dispatch.h).
#include "simd_dispatch.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace nd {
namespace {

SimdLevel cpu_level() {
#ifdef ND_SIMD_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return SimdLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::Avx2;
#endif
  return SimdLevel::Baseline;
}

SimdLevel choose_level() {
  SimdLevel best = cpu_level();
  const char* env = std::getenv("ND_SIMD");
  if (env == nullptr || *env == '\0') return best;
  SimdLevel want;
  if (std::strcmp(env, "baseline") == 0) want = SimdLevel::Baseline;
  else if (std::strcmp(env, "avx2") == 0) want = SimdLevel::Avx2;
  else if (std::strcmp(env, "avx512") == 0) want = SimdLevel::Avx512;
  else {
    // Not an exception: this runs inside the first kernel that needs it.
    std::fprintf(stderr, "ndcore: ignoring ND_SIMD=%s (expected baseline, avx2 or avx512)\n", env);
    return best;
  }
  return (int)want < (int)best ? want : best;
}

}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = choose_level();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "baseline";
  }
}

}  // namespace nd

// For tests and diagnostics through ctypes (no binding needed): the level kernels run at.
extern "C" __attribute__((visibility("default"))) const char* nd_simd_level() {
  return nd::simd_level_name(nd::simd_level());
}
