// simd_dispatch.h: ISA variants of a kernel, chosen once at run time (see Note [ISA variants]).
//
// Note [ISA variants]
// ndcore is built for baseline x86-64 (SSE2) so the wheel runs on any x86-64 CPU. Loops whose
// speed depends on vector width or FMA (transcendental math, softmax) are compiled three times
// with ND_SIMD_KERNEL: `base` (the build's flags), `avx2` (AVX2 + FMA) and `avx512` (AVX-512
// F/BW/DQ/VL). simd_run<K>(args...) calls the best variant the CPU supports. The environment
// variable ND_SIMD=baseline|avx2|avx512, read once on first use, caps the level (tests use it to
// exercise every variant; a level above the CPU's is lowered to what it supports).
// The variants are `flatten`ed so every inline helper (vecmath.h, the functors) is compiled for
// the variant's ISA instead of being called as a baseline function.
#pragma once

namespace nd {

enum class SimdLevel : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The level the variants run at: the CPU's best, capped by ND_SIMD. Cached after the first call.
SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);

}  // namespace nd

#if defined(__GNUC__) && defined(__x86_64__)
#define ND_SIMD_X86 1
#define ND_SIMD_TARGET_AVX2 __attribute__((target("avx2,fma"), flatten))
#ifdef __clang__
#define ND_SIMD_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"), flatten))
#else  // GCC would otherwise keep 256-bit vectors under some -mtune settings
#define ND_SIMD_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512"), flatten))
#endif
// Defines struct Name { static void base Params Body  static void avx2 ...  static void avx512 ... };
// Put `template <...>` before the macro for a templated kernel. The body goes last so that it
// may contain commas.
#define ND_SIMD_KERNEL(Name, Params, ...)                     \
  struct Name {                                               \
    __attribute__((flatten)) static void base Params __VA_ARGS__ \
    ND_SIMD_TARGET_AVX2 static void avx2 Params __VA_ARGS__        \
    ND_SIMD_TARGET_AVX512 static void avx512 Params __VA_ARGS__    \
  };
#else
#define ND_SIMD_KERNEL(Name, Params, ...) \
  struct Name {                           \
    static void base Params __VA_ARGS__   \
  };
#endif

namespace nd {

template <typename K, typename... A>
inline void simd_run(A&&... args) {
#ifdef ND_SIMD_X86
  static const SimdLevel level = simd_level();
  if (level == SimdLevel::Avx512) return K::avx512(static_cast<A&&>(args)...);
  if (level == SimdLevel::Avx2) return K::avx2(static_cast<A&&>(args)...);
#endif
  K::base(static_cast<A&&>(args)...);
}

}  // namespace nd
