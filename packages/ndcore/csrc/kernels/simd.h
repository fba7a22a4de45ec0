// simd.h owns compiling a dense inner loop a second time for a wider vector ISA than the
// build's baseline (x86-64: SSE2), picked at run time, without raising the wheel's baseline.
//
// Note [Wide loops]
// A loop body is an ND_ALWAYS_INLINE function; a twin marked ND_TARGET_AVX2 calls it, so the
// body is inlined there and vectorised with 32-byte registers, and callers pick the twin when
// cpu_has_avx2(). Use it only for short dense loops bound by instructions rather than memory
// (clamp, min/max, reversed copies): each use compiles the loop twice.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ND_HAVE_WIDE 1
#define ND_TARGET_AVX2 __attribute__((target("avx2")))
#else
#define ND_HAVE_WIDE 0
#define ND_TARGET_AVX2
#endif
#define ND_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace nd {

inline bool cpu_has_avx2() {
#if ND_HAVE_WIDE
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace nd
