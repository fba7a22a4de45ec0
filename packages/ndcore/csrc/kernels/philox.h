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

}  // namespace nd
