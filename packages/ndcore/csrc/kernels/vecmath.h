// vecmath.h: branch-free float32/float64 transcendental functions written as scalar code that
// GCC auto-vectorises (no libm calls, only selects, integer bit tricks and polynomials).
// Compiled inside the ISA variants of simd_dispatch.h they run 8 (AVX2) or 16 (AVX-512) lanes
// wide; the baseline variant still vectorises with SSE2.
//
// Note [vecmath accuracy]
// Every function returns IEEE special values as libm does (NaN in -> NaN out, exp overflow to
// inf and underflow to 0 through subnormals, log(0) = -inf, log(x < 0) = NaN, tanh and erf
// saturate to +-1). Results are within 2 ulp of the correctly rounded value (sigmoid 2.5: it
// adds a division to exp's error, as torch's does); tests/test_simd_math.py sweeps each function
// against float64/long-double references in every ISA variant. Range reductions split constants
// in a high part with trailing zero bits (so k * hi is exact) and a low part (Cody-Waite). Polynomial coefficients: exp, log, tanh (float)
// are the classic Cephes minimax ones; expm1, float64 exp/log use Taylor/atanh series; erf was
// fitted here by weighted least squares against scipy's erf, gelu_erf_f32's log(erfc) by a
// Chebyshev least-squares fit (gelu is held to its own tolerance, not 2 ulp).
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#define ND_VM_INLINE inline __attribute__((always_inline))

namespace nd {
namespace vm {

ND_VM_INLINE uint32_t bits(float x) { uint32_t i; std::memcpy(&i, &x, 4); return i; }
ND_VM_INLINE float from_bits(uint32_t i) { float x; std::memcpy(&x, &i, 4); return x; }
ND_VM_INLINE uint64_t bits(double x) { uint64_t i; std::memcpy(&i, &x, 8); return i; }
ND_VM_INLINE double from_bits(uint64_t i) { double x; std::memcpy(&x, &i, 8); return x; }

// ---- float32 ------------------------------------------------------------------------------

constexpr float kInfF = __builtin_inff();
constexpr float kNanF = __builtin_nanf("");
constexpr float kRoundF = 12582912.0f;  // 1.5 * 2^23: x + kRoundF - kRoundF rounds to an integer

// 2^k for integral k in [-126, 127] built in the exponent field. k arrives as a float holding an
// integer; its bits after adding kRoundF + 127 carry k + 127 in the low mantissa bits, which the
// shift moves into the exponent (the magic's own bits fall off the top).
ND_VM_INLINE float pow2i(float k) { return from_bits(bits(k + (kRoundF + 127.0f)) << 23); }

// y * 2^k for integral k in [-252, 254]: two factors keep each within the normal range, so
// subnormal results are rounded once.
ND_VM_INLINE float scale2(float y, float k) {
  float k1 = (k * 0.5f + kRoundF) - kRoundF;
  return y * pow2i(k1) * pow2i(k - k1);
}

// |x| and y with x's sign flipped in, as bit operations: one and/xor instead of the compare,
// negation and blend the equivalent selects vectorise to.
ND_VM_INLINE float abs_bits(float x) { return from_bits(bits(x) & 0x7fffffffu); }
ND_VM_INLINE float xor_sign(float y, float x) { return from_bits(bits(y) ^ (bits(x) & 0x80000000u)); }

// e^r - 1 - r for |r| <= ln2/2 (Cephes expf minimax, relative error ~1e-8)
ND_VM_INLINE float expm1_core_f32(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r;
}

// e^x for x in [-87, 88], whose result is normal: no clamps and no special values (a NaN x
// gives an unspecified value; callers select it away).
ND_VM_INLINE float exp_normal_f32(float x) {
  float kr = x * 1.44269504088896341f + kRoundF;
  float k = kr - kRoundF;
  float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
  float y = 1.0f + (r + expm1_core_f32(r));
  return from_bits(bits(y) + (bits(kr) << 23));
}

// Clamp bounds the compiler cannot see through (never written). With literal bounds GCC threads
// each clamp's branch into the code after it (folding e^-104 and the like into constants) and the
// vectorised loop carries masked compares and blends for every case; with opaque values each
// clamp is one max/min instruction (`x < lo ? lo : x` is exactly maxps(lo, x), NaN passes).
struct OpaqueBounds {
  float exp_lo = -104.0f, exp_hi = 89.0f;
  float tanh_hi = 9.5f;  // tanh(x) rounds to 1 from 9.01 on
  float gelu_hi = 5.65685425f;  // |u| = 4
};
inline OpaqueBounds g_opaque;

// 2^k goes into the result's exponent field by an integer add of k << 23, which the rounding
// constant leaves in the low bits of `kr` (the shift drops the constant's own bits). k is moved
// 64 towards zero first and the result multiplied back by 2^+-64: the add then never leaves the
// normal range, and the one multiplication rounds a subnormal result once or overflows to inf.
// The clamps keep k in [-150, 129]; a NaN flows through them but not through the integer add.
ND_VM_INLINE float exp_f32(float x) {
  const float lo = g_opaque.exp_lo, hi = g_opaque.exp_hi;
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  float kr = xc * 1.44269504088896341f + kRoundF;
  float k = kr - kRoundF;
  float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  float y = 1.0f + (r + expm1_core_f32(r));
  bool neg = xc < 0.0f;
  uint32_t kbits = (bits(kr) << 23) + (neg ? (64u << 23) : (0u - (64u << 23)));
  float res = from_bits(bits(y) + kbits) * (neg ? 5.42101086242752217e-20f : 1.84467440737095516e19f);
  return x != x ? x : res;
}

ND_VM_INLINE float exp2_f32(float x) {
  float xc = x < -151.0f ? -151.0f : x;
  xc = xc > 129.0f ? 129.0f : xc;
  float k = (xc + kRoundF) - kRoundF;
  float r = (xc - k) * 0.693147180559945309f;  // xc - k is exact
  return scale2(1.0f + (r + expm1_core_f32(r)), k);
}

// expm1 = 2 * (2^(k-1) * expm1(r) + (2^(k-1) - 1/2)): the half scale keeps k = 128 finite and
// k = 0 returns expm1(r) itself, so small |x| keep full relative accuracy.
ND_VM_INLINE float expm1_f32(float x) {
  float xc = x > 88.72283935f ? 88.72283935f : (x < -30.0f ? -30.0f : x);
  float k = (xc * 1.44269504088896341f + kRoundF) - kRoundF;
  float r = (xc - k * 0.693359375f) + k * 2.12194440e-4f;
  // Taylor to r^8 (truncation below 1e-9 relative for |r| <= ln2/2)
  float q = 2.48015873e-5f;
  q = q * r + 1.98412698e-4f;
  q = q * r + 1.38888889e-3f;
  q = q * r + 8.33333333e-3f;
  q = q * r + 4.16666667e-2f;
  q = q * r + 1.66666667e-1f;
  q = q * r + 0.5f;
  float p = r + r * r * q;
  float sh = pow2i(k - 1.0f);
  float y = 2.0f * (sh * p + (sh - 0.5f));
  y = x > 88.72283935f ? kInfF : y;
  y = x == 0.0f ? x : y;  // keeps the sign of -0
  return x != x ? x : y;
}

// Splits x > 0 (finite, normal or subnormal) as 2^e * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)),
// and returns log(1 + f) in `lnm`.
ND_VM_INLINE void log_split_f32(float x, float& e, float& lnm) {
  bool sub = x < 1.17549435e-38f;
  float xs = sub ? x * 8388608.0f : x;  // 2^23 brings subnormals into the normal range
  // Adding 1 - sqrt(1/2) in the mantissa field carries into the exponent exactly when the
  // significand (in [1, 2)) is at least sqrt(2), which then halves it: the exponent and the
  // rebased mantissa come out without a compare and two selects.
  uint32_t ix = bits(xs) + (0x3f800000u - 0x3f3504f3u);
  float m = from_bits((ix & 0x007fffffu) + 0x3f3504f3u);  // [sqrt(1/2), sqrt(2))
  e = (float)((int32_t)(ix >> 23) - 127) - (sub ? 23.0f : 0.0f);
  float f = m - 1.0f;  // exact
  float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  lnm = f + (p * f * z - 0.5f * z);
}

// libm's special values for the log family: NaN, log(x < 0) = NaN, log(+-0) = -inf, log(inf) = inf.
ND_VM_INLINE float log_special_f32(float x, float y) {
  y = x == kInfF ? kInfF : y;
  y = x == 0.0f ? -kInfF : y;
  y = x < 0.0f ? kNanF : y;
  return x != x ? x : y;
}

ND_VM_INLINE float log_f32(float x) {
  float e, lnm;
  log_split_f32(x, e, lnm);
  // ln2 = 0.693359375 - 2.12194440e-4, the first part exact times any exponent
  return log_special_f32(x, (lnm - e * 2.12194440e-4f) + e * 0.693359375f);
}

ND_VM_INLINE float log2_f32(float x) {
  float e, lnm;
  log_split_f32(x, e, lnm);
  // log2(e) = 1 + 0.44269504..., so the rounded product only carries the smaller part
  return log_special_f32(x, e + (lnm * 0.442695040888963407f + lnm));
}

ND_VM_INLINE float log10_f32(float x) {
  float e, lnm;
  log_split_f32(x, e, lnm);
  // log10(2) = 0.30078125 + 2.48745663e-4 (the first part exact times any exponent)
  return log_special_f32(x, (e * 2.48745663981195213e-4f + lnm * 0.434294481903251828f) + e * 0.30078125f);
}

// log1p(x) = log(u) - ((u - 1) - x) / u with u = 1 + x rounded: the quotient corrects the
// rounding of u to first order (exact result x when u == 1).
ND_VM_INLINE float log1p_f32(float x) {
  float u = 1.0f + x;
  float e, lnm;
  log_split_f32(u, e, lnm);
  float c = (u - 1.0f) - x;
  float y = ((lnm - e * 2.12194440e-4f) + e * 0.693359375f) - c / u;
  y = x == kInfF ? kInfF : y;
  y = x == -1.0f ? -kInfF : y;
  y = x < -1.0f ? kNanF : y;
  y = x == 0.0f ? x : y;  // keeps the sign of -0
  return x != x ? x : y;
}

ND_VM_INLINE float tanh_f32(float x) {
  float ax = abs_bits(x);
  float z = x * x;
  // |x| < 0.625: odd Cephes polynomial
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = x + x * z * p;
  // otherwise (1 - e^-2|x|) / (1 + e^-2|x|); the clamp keeps e^-2|x| normal and leaves NaN to
  // the last select
  const float hi = g_opaque.tanh_hi;
  float em = exp_normal_f32(-2.0f * (ax > hi ? hi : ax));
  float big = xor_sign((1.0f - em) / (1.0f + em), x);
  small = x == 0.0f ? x : small;  // keeps the sign of -0
  big = x != x ? x : big;
  return ax < 0.625f ? small : big;
}


// erf: x + x * P(x^2) for |x| < 0.9; 1 - exp(Q(|x| - 1.5)) with Q ~ log(erfc) up to 4, where
// erfc < 2^-25 no longer changes the float result.
ND_VM_INLINE float erf_f32(float x) {
  float ax = abs_bits(x);
  float z = x * x;
  float p = 8.539154077880085e-05f;
  p = p * z - 8.182009914889932e-04f;
  p = p * z + 5.204444285482168e-03f;
  p = p * z - 2.686075679957866e-02f;
  p = p * z + 1.128371953964233e-01f;
  p = p * z - 3.761263489723205e-01f;
  p = p * z + 1.283791661262512e-01f;
  float small = x + x * p;
  float t = (ax < 4.0f ? ax : 4.0f) - 1.5f;
  float q = -1.8357887654474325e-08f;
  q = q * t + 1.768219590303488e-06f;
  q = q * t - 2.669484274520073e-05f;
  q = q * t + 2.163368335459381e-04f;
  q = q * t - 1.254461938515305e-03f;
  q = q * t + 6.005214992910623e-03f;
  q = q * t - 2.582453005015850e-02f;
  q = q * t - 8.926399946212769e-01f;
  q = q * t - 3.508800745010376e+00f;
  q = q * t - 3.384492158889770e+00f;
  float big = xor_sign(1.0f - exp_f32(q), x);
  return ax < 0.9f ? small : (x != x ? x : big);
}

// gelu's erf form, x * Phi(x) with Phi(x) = (1 + erf(x / sqrt2)) / 2, to gelu's float32 tolerance
// (2e-6 relative or 2e-7 absolute, tests/test_gelu_relu_fast.py) rather than erf_f32's 2 ulp,
// from one polynomial and one exp instead of erf's two branches: Phi = 1 - e / 2 for x >= 0
// and e / 2 below, e = erfc(|u|) = exp(L(|u|)), u = x / sqrt2. L ~ log(erfc) on |u| <= 4 in
// s = |u| - 2 (a Chebyshev least-squares fit made here, 2.5e-8 absolute); its float rounding
// grows to 1.5e-6 only where e < 1e-7. Phi's own rounding near 1/2 is far below gelu's tolerance.
// Below x = -5.75 gelu rounds under 3e-8 and is 0 (keeping -inf * 0 = NaN, as the libm loop).
ND_VM_INLINE float gelu_erf_f32(float x) {
  float ax = abs_bits(x);
  const float hi = g_opaque.gelu_hi;
  float s = (ax > hi ? hi : ax) * 0.70710678118654752f - 2.0f;
  float l = 7.857524764e-08f;
  l = l * s - 3.400349158e-07f;
  l = l * s + 1.271295957e-07f;
  l = l * s + 2.680357511e-06f;
  l = l * s - 2.056091398e-05f;
  l = l * s + 1.338370930e-04f;
  l = l * s - 7.325399783e-04f;
  l = l * s + 3.572109388e-03f;
  l = l * s - 1.646505855e-02f;
  l = l * s - 9.237512946e-01f;
  l = l * s - 4.418160915e+00f;
  l = l * s - 5.364941120e+00f;
  // l is in [-18.2, 0]; a NaN x gives a NaN product below whatever exp makes of it
  float half_e = 0.5f * exp_normal_f32(l);
  float phi = x < 0.0f ? half_e : 1.0f - half_e;
  return x < -5.75f ? x * 0.0f : x * phi;
}

// ---- float64 ------------------------------------------------------------------------------

constexpr double kInfD = __builtin_inf();
constexpr double kNanD = __builtin_nan("");
constexpr double kRoundD = 6755399441055744.0;  // 1.5 * 2^52

ND_VM_INLINE double pow2i(double k) { return from_bits(bits(k + (kRoundD + 1023.0)) << 52); }
ND_VM_INLINE double scale2(double y, double k) {
  double k1 = (k * 0.5 + kRoundD) - kRoundD;
  return y * pow2i(k1) * pow2i(k - k1);
}

ND_VM_INLINE double exp_f64(double x) {
  double xc = x < -746.0 ? -746.0 : x;  // as exp_f32: the clamp replaces the special-value selects
  xc = xc > 710.0 ? 710.0 : xc;
  double k = (xc * 1.4426950408889634 + kRoundD) - kRoundD;
  // ln2 split: the high part has 32 trailing zero bits, so k * hi is exact
  double r = (xc - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  // Taylor to r^13: truncation ~4e-18 relative for |r| <= ln2/2
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  return scale2(1.0 + (r + p * r * r), k);
}

ND_VM_INLINE double log_f64(double x) {
  bool sub = x < 2.2250738585072014e-308;
  double xs = sub ? x * 4503599627370496.0 : x;  // 2^52
  uint64_t ix = bits(xs);
  double m = from_bits((ix & uint64_t(0x000fffffffffffff)) | uint64_t(0x3fe0000000000000));  // [0.5, 1)
  // exponent to double without an int64 conversion (none in AVX2): 2^52 + e, minus 2^52
  double ef = from_bits((ix >> 52) | uint64_t(0x4330000000000000)) - (4503599627370496.0 + 1022.0);
  ef = sub ? ef - 52.0 : ef;
  bool lo = m < 0.70710678118654752440;
  double f = lo ? (m + m) - 1.0 : m - 1.0;
  double e = lo ? ef - 1.0 : ef;
  // log(1 + f) = 2 atanh(s) = 2s + s R(s^2), s = f / (2 + f), written as f - (h - s (h + R))
  double s = f / (2.0 + f), z = s * s, h = 0.5 * f * f;
  double R = 2.0 / 23.0;
  R = R * z + 2.0 / 21.0;
  R = R * z + 2.0 / 19.0;
  R = R * z + 2.0 / 17.0;
  R = R * z + 2.0 / 15.0;
  R = R * z + 2.0 / 13.0;
  R = R * z + 2.0 / 11.0;
  R = R * z + 2.0 / 9.0;
  R = R * z + 2.0 / 7.0;
  R = R * z + 2.0 / 5.0;
  R = R * z + 2.0 / 3.0;
  R *= z;
  double y = e * 6.93147180369123816490e-01 + (f - (h - (s * (h + R) + e * 1.90821492927058770002e-10)));
  y = x == kInfD ? kInfD : y;
  y = x == 0.0 ? -kInfD : y;
  y = x < 0.0 ? kNanD : y;
  return x != x ? x : y;
}

// 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below, from one exp of -|x|: no overflow, and
// results in the subnormal range for x < -87 instead of 0.
template <typename T> ND_VM_INLINE T sigmoid(T x, T e_neg_abs) {
  return (x >= T(0) ? T(1) : e_neg_abs) / (T(1) + e_neg_abs);
}
ND_VM_INLINE float sigmoid_f32(float x) { return sigmoid(x, exp_f32(x < 0.0f ? x : -x)); }
ND_VM_INLINE double sigmoid_f64(double x) { return sigmoid(x, exp_f64(x < 0.0 ? x : -x)); }

// ---- float32 x16, AVX-512 ---------------------------------------------------------------------
// Note [vecmath x16]
// The scalar functions above vectorise well, but in 512-bit code only two ports execute vector
// instructions, so each compare-and-select that handles a special value costs as much as a
// polynomial step. These hand-vectorised versions of exp, log, log1p, tanh and erf do the same
// math in fewer instructions: one compare per vector finds lanes that need special values or
// clamps (zero, negative, subnormal, inf, NaN, exp's over/underflow) and only such vectors pay
// for the selects; tanh takes one expm1-based formula instead of two branches. Each stays within
// 2 ulp (tests/test_vecmath_fast.py sweeps them; tanh's worst case over [0, 10] is 1.9 ulp),
// and the unary loops call them from their AVX-512 variant only (see unary.cpp).
#if defined(__GNUC__) && defined(__x86_64__)
#define ND_VM_HAVE_X16 1
#define ND_VM_X16 \
  inline __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))

ND_VM_X16 __m512 f16(float v) { return _mm512_set1_ps(v); }
ND_VM_X16 __m512i i16(uint32_t v) { return _mm512_set1_epi32((int)v); }

// The zero-masked forms of min/max, shifts, conversions and rcp14 with every lane selected: the
// plain intrinsics start from _mm512_undefined_*, which GCC 12 reports under -Wuninitialized once
// inlined. Either operand of min may come back for a NaN lane, so callers restore NaN themselves.
constexpr __mmask16 kAll16 = 0xFFFF;
ND_VM_X16 __m512 min_x16(__m512 a, __m512 b) { return _mm512_maskz_min_ps(kAll16, a, b); }
ND_VM_X16 __m512 nan_through_x16(__m512 x, __m512 y) {
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// |a| with b's sign bit: b's sign, a's other bits (imm 0xD8: c ? b : a bitwise, c the sign mask)
ND_VM_X16 __m512 copy_sign_x16(__m512 a_abs, __m512 b) {
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(a_abs), _mm512_castps_si512(b),
                                                       i16(0x80000000u), 0xD8));
}

// num / den from the 14-bit reciprocal estimate and one Newton step on the quotient: q0 = num * r,
// q = q0 + r * (num - den * q0): within 1 ulp for log1p's den (normal, its reciprocal too or
// num = 0). tanh keeps a division, which measured as fast there.
ND_VM_X16 __m512 div_x16(__m512 num, __m512 den) {
  __m512 r = _mm512_maskz_rcp14_ps(kAll16, den);
  __m512 q0 = _mm512_mul_ps(num, r);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(den, q0, num), q0);
}

// e^r - 1 for the reduced argument of x, with k (x = k ln2 + r) left in the low bits of `kr`.
ND_VM_X16 __m512 expm1_reduced_x16(__m512 x, __m512& kr) {
  kr = _mm512_fmadd_ps(x, f16(1.44269504088896341f), f16(kRoundF));
  __m512 k = _mm512_sub_ps(kr, f16(kRoundF));
  __m512 r = _mm512_fmadd_ps(k, f16(2.12194440e-4f), _mm512_fnmadd_ps(k, f16(0.693359375f), x));
  __m512 p = _mm512_fmadd_ps(f16(1.9875691500e-4f), r, f16(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, f16(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, f16(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, f16(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, f16(5.0000001201e-1f));
  return _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r);
}

// y * 2^k by an integer add of k << 23 to y's exponent field (kr as expm1_reduced_x16 leaves it).
ND_VM_X16 __m512 add_exponent_x16(__m512 y, __m512 kr, __m512i extra) {
  __m512i kbits = _mm512_add_epi32(_mm512_maskz_slli_epi32(kAll16, _mm512_castps_si512(kr), 23), extra);
  return _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(y), kbits));
}

// exp_normal_f32 for x in [-87, 88]; NaN in gives NaN out.
ND_VM_X16 __m512 exp_normal_x16(__m512 x) {
  __m512 kr;
  __m512 y = _mm512_add_ps(f16(1.0f), expm1_reduced_x16(x, kr));
  return add_exponent_x16(y, kr, _mm512_setzero_si512());
}

// exp_f32: vectors with every |x| <= 87 (results normal) skip its clamps and scaling by 2^+-64.
ND_VM_X16 __m512 exp_x16(__m512 x) {
  const __mmask16 ok = _mm512_cmp_ps_mask(_mm512_abs_ps(x), f16(87.0f), _CMP_LE_OQ);
  if (__builtin_expect(ok == kAll16, 1)) return exp_normal_x16(x);
  __m512 xc = min_x16(_mm512_maskz_max_ps(kAll16, x, f16(-104.0f)), f16(89.0f));
  __m512 kr;
  __m512 y = _mm512_add_ps(f16(1.0f), expm1_reduced_x16(xc, kr));
  const __mmask16 neg = _mm512_cmp_ps_mask(xc, f16(0.0f), _CMP_LT_OQ);
  __m512i shift = _mm512_mask_mov_epi32(i16(0u - (64u << 23)), neg, i16(64u << 23));
  __m512 scale = _mm512_mask_mov_ps(f16(1.84467440737095516e19f), neg, f16(5.42101086242752217e-20f));
  return nan_through_x16(x, _mm512_mul_ps(add_exponent_x16(y, kr, shift), scale));
}

// Lanes of x that are not positive normal finite numbers: the unsigned compare wraps zero,
// subnormals and negatives (sign bit) above the bound, and inf/NaN are above it already.
ND_VM_X16 __mmask16 not_positive_normal_x16(__m512 x) {
  return _mm512_cmpge_epu32_mask(_mm512_sub_epi32(_mm512_castps_si512(x), i16(0x00800000u)), i16(0x7f000000u));
}

// log(x) for positive normal x as log_f32 computes it, the exponent e and log(1 + f) apart:
// subtracting sqrt(1/2)'s bits leaves e in the exponent field (arithmetically shifted out) and
// the significand, rebased by the same constant, in [sqrt(1/2), sqrt(2)).
ND_VM_X16 __m512 log_normal_x16(__m512 x, __m512 e_adjust) {
  __m512i t = _mm512_sub_epi32(_mm512_castps_si512(x), i16(0x3f3504f3u));
  __m512 e = _mm512_sub_ps(_mm512_maskz_cvtepi32_ps(kAll16, _mm512_maskz_srai_epi32(kAll16, t, 23)), e_adjust);
  __m512 m = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_and_si512(t, i16(0x007fffffu)), i16(0x3f3504f3u)));
  __m512 f = _mm512_sub_ps(m, f16(1.0f));
  __m512 z = _mm512_mul_ps(f, f);
  __m512 p = _mm512_fmadd_ps(f16(7.0376836292e-2f), f, f16(-1.1514610310e-1f));
  p = _mm512_fmadd_ps(p, f, f16(1.1676998740e-1f));
  p = _mm512_fmadd_ps(p, f, f16(-1.2420140846e-1f));
  p = _mm512_fmadd_ps(p, f, f16(1.4249322787e-1f));
  p = _mm512_fmadd_ps(p, f, f16(-1.6668057665e-1f));
  p = _mm512_fmadd_ps(p, f, f16(2.0000714765e-1f));
  p = _mm512_fmadd_ps(p, f, f16(-2.4999993993e-1f));
  p = _mm512_fmadd_ps(p, f, f16(3.3333331174e-1f));
  // log(1 + f) = f + z * (p * f - 1/2)
  __m512 lnm = _mm512_fmadd_ps(z, _mm512_fmsub_ps(p, f, f16(0.5f)), f);
  return _mm512_fmadd_ps(e, f16(0.693359375f), _mm512_fnmadd_ps(e, f16(2.12194440e-4f), lnm));
}

// log_special_f32's values for the lanes in `sp`.
ND_VM_X16 __m512 log_special_x16(__m512 x, __m512 y, __mmask16 sp) {
  y = _mm512_mask_mov_ps(y, sp & _mm512_cmp_ps_mask(x, f16(kInfF), _CMP_EQ_OQ), f16(kInfF));
  y = _mm512_mask_mov_ps(y, sp & _mm512_cmp_ps_mask(x, f16(0.0f), _CMP_EQ_OQ), f16(-kInfF));
  y = _mm512_mask_mov_ps(y, sp & _mm512_cmp_ps_mask(x, f16(0.0f), _CMP_LT_OQ), f16(kNanF));
  return _mm512_mask_mov_ps(y, sp & _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

ND_VM_X16 __m512 log_x16(__m512 x) {
  const __mmask16 sp = not_positive_normal_x16(x);
  if (__builtin_expect(sp == 0, 1)) return log_normal_x16(x, _mm512_setzero_ps());
  // subnormals scaled into the normal range by 2^23
  const __mmask16 sub = _mm512_cmp_ps_mask(x, f16(1.17549435e-38f), _CMP_LT_OQ);
  __m512 xs = _mm512_mask_mul_ps(x, sub, x, f16(8388608.0f));
  __m512 y = log_normal_x16(xs, _mm512_maskz_mov_ps(sub, f16(23.0f)));
  return log_special_x16(x, y, sp & ~(sub & _mm512_cmp_ps_mask(x, f16(0.0f), _CMP_GT_OQ)));
}

// log1p_f32's u = 1 + x and the first-order correction for u's rounding, c / u.
ND_VM_X16 __m512 log1p_x16(__m512 x) {
  __m512 u = _mm512_add_ps(f16(1.0f), x);
  const __mmask16 sp = not_positive_normal_x16(u) | _mm512_cmp_ps_mask(x, f16(0.0f), _CMP_EQ_OQ);
  __m512 c = _mm512_sub_ps(_mm512_sub_ps(u, f16(1.0f)), x);
  // off the special lanes u is in [2^-24, FLT_MAX]; where its reciprocal is subnormal c is 0
  __m512 y = _mm512_sub_ps(log_normal_x16(u, _mm512_setzero_ps()), div_x16(c, u));
  if (__builtin_expect(sp == 0, 1)) return y;
  // u = 1 + x is never subnormal (the floats next to -1 are 2^-24 away): the special lanes are
  // x <= -1, inf, NaN and the zeros
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, f16(kInfF), _CMP_EQ_OQ), f16(kInfF));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, f16(-1.0f), _CMP_EQ_OQ), f16(-kInfF));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, f16(-1.0f), _CMP_LT_OQ), f16(kNanF));
  y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, f16(0.0f), _CMP_EQ_OQ), x);
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// tanh(|x|) = -m / (2 + m) with m = expm1(-2|x|), its sign copied from x (so -0 stays -0). m
// comes from exp_normal_x16's reduction, 2^k (e^r - 1) + (2^k - 1), accurate relative to m down
// to the smallest |x|: one formula and no branch for small |x| as tanh_f32 has.
ND_VM_X16 __m512 tanh_x16(__m512 x) {
  __m512 a = _mm512_mul_ps(f16(-2.0f), min_x16(_mm512_abs_ps(x), f16(9.5f)));  // [-19, 0]
  __m512 kr;
  __m512 em_r = expm1_reduced_x16(a, kr);
  __m512 two_k = _mm512_castsi512_ps(
      _mm512_add_epi32(_mm512_maskz_slli_epi32(kAll16, _mm512_castps_si512(kr), 23), i16(0x3f800000u)));
  // m and -(2 + m) each rounded once from the exact 2^k -+ 1 (2 + m rounded from a rounded m
  // would add an ulp where tanh is near 1)
  __m512 m = _mm512_fmadd_ps(two_k, em_r, _mm512_sub_ps(two_k, f16(1.0f)));
  __m512 t = _mm512_div_ps(m, _mm512_fnmsub_ps(two_k, em_r, _mm512_add_ps(two_k, f16(1.0f))));
  return nan_through_x16(x, copy_sign_x16(t, x));
}

// erf_f32's two branches.
ND_VM_X16 __m512 erf_x16(__m512 x) {
  __m512 ax = _mm512_abs_ps(x);
  __m512 z = _mm512_mul_ps(x, x);
  __m512 p = _mm512_fmadd_ps(f16(8.539154077880085e-05f), z, f16(-8.182009914889932e-04f));
  p = _mm512_fmadd_ps(p, z, f16(5.204444285482168e-03f));
  p = _mm512_fmadd_ps(p, z, f16(-2.686075679957866e-02f));
  p = _mm512_fmadd_ps(p, z, f16(1.128371953964233e-01f));
  p = _mm512_fmadd_ps(p, z, f16(-3.761263489723205e-01f));
  p = _mm512_fmadd_ps(p, z, f16(1.283791661262512e-01f));
  __m512 small = _mm512_fmadd_ps(x, p, x);
  __m512 t = _mm512_sub_ps(min_x16(ax, f16(4.0f)), f16(1.5f));
  __m512 q = _mm512_fmadd_ps(f16(-1.8357887654474325e-08f), t, f16(1.768219590303488e-06f));
  q = _mm512_fmadd_ps(q, t, f16(-2.669484274520073e-05f));
  q = _mm512_fmadd_ps(q, t, f16(2.163368335459381e-04f));
  q = _mm512_fmadd_ps(q, t, f16(-1.254461938515305e-03f));
  q = _mm512_fmadd_ps(q, t, f16(6.005214992910623e-03f));
  q = _mm512_fmadd_ps(q, t, f16(-2.582453005015850e-02f));
  q = _mm512_fmadd_ps(q, t, f16(-8.926399946212769e-01f));
  q = _mm512_fmadd_ps(q, t, f16(-3.508800745010376e+00f));
  q = _mm512_fmadd_ps(q, t, f16(-3.384492158889770e+00f));
  // q is in [-18.3, -0.41]: exp_normal's range
  __m512 big = copy_sign_x16(_mm512_sub_ps(f16(1.0f), exp_normal_x16(q)), x);
  return nan_through_x16(x, _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, f16(0.9f), _CMP_LT_OQ), small));
}

#endif  // x86-64

}  // namespace vm
}  // namespace nd
