// Philox-4x32-10, the counter-based generator behind every random kernel (creation.cpp's fills,
// dropout.cpp's masks): element i of a fill depends only on the seed and its counter position,
// so results are reproducible under manual_seed and independent of the thread count.
#pragma once

#include <cstdint>

namespace nd {

struct Philox {
  uint32_t k0, k1;
  explicit Philox(uint64_t seed) : k0((uint32_t)seed), k1((uint32_t)(seed >> 32)) {}
  // 4 random 32-bit words for counter `ctr`
  void block(uint64_t ctr, uint32_t out[4]) const {
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0, a = k0, b = k1;
    for (int r = 0; r < 10; ++r) {
      uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
      uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ a, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ b;
      c1 = (uint32_t)p1;
      c3 = (uint32_t)p0;
      c0 = n0;
      c2 = n2;
      a += 0x9E3779B9u;
      b += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
  }
};

// The words of blocks ctr, ctr + 1, ..., ctr + nb - 1, block k's four at out[4k..4k+3]: exactly
// Philox::block's, computed 16 blocks at a time in SIMD lanes (see Note [Vectorised Philox]).
void philox_words(const Philox& ph, uint64_t ctr, int64_t nb, uint32_t* out);

// Uniforms on [0, 1) from the top 24 bits of a word (float32) or 53 bits of two words (float64).
inline float u01_24(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
inline double u01_53(uint32_t hi, uint32_t lo) { return (double)((((uint64_t)hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0); }

// Normals from blocks ctr .. ctr + nb - 1 into out[4 * nb]: Box-Muller on each block's word
// pairs, (w0, w1) -> out[4k] = mean + std * r * cos(t), out[4k + 1] = mean + std * r * sin(t) with
// r = sqrt(-2 log(1 - u01_24(w0))), t = 2 pi u01_24(w1), and (w2, w3) likewise -> out[4k + 2..3].
// Bit-identical at every SIMD level (see random_simd.cpp).
void normal_f32(const Philox& ph, uint64_t ctr, int64_t nb, float mean, float std, float* out);

}  // namespace nd
