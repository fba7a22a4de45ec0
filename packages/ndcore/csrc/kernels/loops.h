// loops.h owns strided elementwise iteration (see Note [Elementwise iteration]), broadcasting
// and type-promotion helpers shared by every kernel family.
//
// Note [Elementwise iteration]
// Operands (outputs first) are described by byte strides over one broadcast shape. Dims are
// ordered by the output's strides, size-1 dims dropped and adjacent dims merged when every
// operand is contiguous across them, so most calls reach the kernel as one flat 1-D loop.
// parallel_for splits the flat index range across threads. Kernels see either one row at a time,
// `run`: fn(char** ptrs, const int64_t* strides, int64_t n), or blocks of rows, `run2d`: the
// same plus the strides between rows and a row count, so they pick their loop (dense, constant
// along the row, transposed) once per block; see Note [Odometer] for the walk between rows.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <string>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

#include "dispatch.h"
#include "ops_gen.h"
#include "parallel.h"
#include "tensor.h"

namespace nd {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides (in elements) of `t` viewed with the broadcast shape `shape`.
Shape broadcast_strides(const Tensor& t, const Shape& shape, const char* op);
// torch's result_type over tensors, honouring 0-d tensors and wrapped numbers.
DType result_type(const std::vector<Tensor>& ts);
// A tensor with the same values in dtype `dt` (itself if already so).
Tensor cast_to(const Tensor& t, DType dt);
DType default_float_dtype();
void set_default_float_dtype(DType dt);
// Checks or allocates the output of an elementwise op: uses call.outputs[0] if given (out= or
// in-place; must have `shape` exactly and accept `compute` per can_cast), else allocates.
// Returns the tensor the kernel should write, which may be a temporary when out's dtype differs.
Tensor prepare_output(Call& call, const Shape& shape, DType compute, DType out_dtype, Device dev);
// Note [Output layout]
// A fresh elementwise output takes the memory layout the inputs agree on, by torch's
// TensorIterator rule, so `M.T * 2` or an op on a channels-last view walks memory in order and
// returns a tensor with torch's strides: with every input of the broadcast shape and contiguous,
// channels-last or dense with one stride vector, the output is the same; otherwise dims are
// ordered by the inputs' strides (broadcast dims ignored, the first input that tells two dims
// apart decides, equal strides put the smaller dim inner), row-major when nothing reorders them.
// Strides (in elements) for a fresh output of `shape` computed from `inputs` (already cast to
// the compute dtype, see cast_keep_layout).
Shape elementwise_out_strides(const std::vector<Tensor>& inputs, const Shape& shape);
// prepare_output, except that an output it allocates takes the layout of `inputs`.
// The inputs are taken by reference: every elementwise op passes here, and a vector of Tensors
// would cost an allocation and two atomic refcount updates per input.
using TensorRefs = std::initializer_list<std::reference_wrapper<const Tensor>>;
Tensor prepare_output_like(Call& call, TensorRefs inputs, const Shape& shape, DType out_dtype, Device dev);
// cast_to as torch's `.to(dtype)` lays it out: a dense input keeps its strides, others become
// dense in the order of their strides (so the cast input still agrees with the other operands).
Tensor cast_keep_layout(const Tensor& t, DType dt);
// Note [Memory formats]: the strides torch's memory_format gives a copy of x (raises ValueError
// naming `op` for an unknown format or a rank the format does not fit), a fresh CPU tensor laid
// out so, and whether strides are contiguous in a format.
Shape strides_for_format(const Tensor& x, const std::string& format, const char* op);
Tensor empty_in_format(const Tensor& x, DType dt, Device dev, const std::string& format, const char* op);
bool is_contiguous_in_format(const Shape& sizes, const Shape& strides, const std::string& format);
// Copies `tmp` into call.outputs[0] if prepare_output returned a temporary.
void finish_output(Call& call, const Tensor& written);
void copy_into(const Tensor& dst, const Tensor& src);  // casting, broadcasting copy on CPU
// Hands a multi-output op's results back: into the out= tensors when the caller gave them
// (checked and resized one by one as prepare_output does), else as the call's outputs.
inline void set_outputs(Call& call, const std::vector<Tensor>& results) {
  if (call.outputs.empty() || !call.outputs[0].defined()) {
    call.outputs = results;
    return;
  }
  if (call.outputs.size() != results.size())
    throw ValueError(std::string("[") + call.name() + "] expected " + std::to_string(results.size()) +
                     " out= tensors, got " + std::to_string(call.outputs.size()));
  for (size_t i = 0; i < results.size(); ++i) {
    Call one;
    one.op = call.op;
    one.outputs = {call.outputs[i]};
    Tensor w = prepare_output(one, results[i].sizes(), results[i].dtype(), results[i].dtype(), results[i].device());
    copy_into(w, results[i]);
    finish_output(one, w);
  }
}

template <int N>
struct StridedLoop {
  int ndim = 0;
  int64_t sizes[16];
  int64_t strides[16][N];  // bytes; [dim][operand]
  char* base[N];
  int64_t numel = 1;

  StridedLoop(const std::array<Tensor, N>& ops, const Shape& shape, const char* opname) {
    // Common case first: every operand contiguous with exactly this shape is one flat loop.
    bool flat = true;
    for (int k = 0; k < N && flat; ++k) flat = ops[k].sizes() == shape && ops[k].is_contiguous();
    if (flat) {
      numel = numel_of(shape);
      for (int k = 0; k < N; ++k) {
        base[k] = ops[k].data_ptr();
        strides[0][k] = (int64_t)ops[k].itemsize();
      }
      sizes[0] = numel;
      ndim = numel > 0 ? 1 : 0;
      return;
    }
    Shape st[N];
    for (int k = 0; k < N; ++k) {
      base[k] = ops[k].data_ptr();
      st[k] = broadcast_strides(ops[k], shape, opname);
    }
    // order dims by output stride, largest first, so the innermost loop is the densest
    std::vector<int> order;
    for (int d = 0; d < (int)shape.size(); ++d)
      if (shape[d] != 1) order.push_back(d);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      for (int k = 0; k < N; ++k) {
        int64_t sa = std::abs(st[k][a]), sb = std::abs(st[k][b]);
        if (sa != sb && sa != 0 && sb != 0) return sa > sb;
      }
      return false;
    });
    if (order.size() > 16) throw ValueError(std::string("[") + opname + "] more than 16 non-trivial dims");
    for (int d : order) {
      int64_t sz = shape[d];
      numel *= sz;
      if (ndim > 0) {
        bool merge = true;
        for (int k = 0; k < N; ++k)
          if (strides[ndim - 1][k] != st[k][d] * (int64_t)ops[k].itemsize() * sz) merge = false;
        if (merge) {
          sizes[ndim - 1] *= sz;
          for (int k = 0; k < N; ++k) strides[ndim - 1][k] = st[k][d] * (int64_t)ops[k].itemsize();
          continue;
        }
      }
      sizes[ndim] = sz;
      for (int k = 0; k < N; ++k) strides[ndim][k] = st[k][d] * (int64_t)ops[k].itemsize();
      ++ndim;
    }
    if (numel_of(shape) == 0) numel = 0;
  }

  // fn(char** ptrs, const int64_t* inner_strides, int64_t n): one row at a time.
  template <typename F>
  void run(F&& fn, int64_t grain) {
    run2d(
        [&](char** p, const int64_t* si, const int64_t* so, int64_t n, int64_t rows) {
          if (rows == 1) return fn(p, si, n);
          char* q[N];
          for (int k = 0; k < N; ++k) q[k] = p[k];
          for (int64_t r = 0; r < rows; ++r) {
            fn(q, si, n);
            for (int k = 0; k < N; ++k) q[k] += so[k];
          }
        },
        grain);
  }

  // fn(char** ptrs, const int64_t* inner_strides, const int64_t* outer_strides, int64_t n,
  // int64_t rows): `rows` rows of n elements, row r starting at ptrs[k] + r * outer_strides[k].
  // Kernels that pick their inner loop by stride pattern do so once per block of rows instead
  // of once per row, which is what short broadcast rows (N,C,H,W) * (N,C,1,1) pay for.
  // See Note [Odometer].
  template <typename F>
  void run2d(F&& fn, int64_t grain) {
    if (numel == 0) return;
    if (ndim == 0) {
      int64_t zero[N] = {};
      char* p[N];
      for (int k = 0; k < N; ++k) p[k] = base[k];
      fn(p, zero, zero, 1, 1);
      return;
    }
    parallel_for(numel, grain, [&](int64_t begin, int64_t end) { run_range(fn, begin, end); });
  }

 private:
  // Note [Odometer]
  // A chunk's start is decomposed into a multi-index once (div/mod per dim); after that the
  // pointers move by adding strides and a wrapped digit carries into the next dim, so each row
  // costs a few adds however many dims there are.
  template <typename F>
  void run_range(F& fn, int64_t begin, int64_t end) const {
    const int in = ndim - 1;
    const int64_t inner = sizes[in];
    int64_t idx[16];
    char* p[N];
    int64_t rem = begin;
    for (int d = in; d >= 0; --d) {
      idx[d] = rem % sizes[d];
      rem /= sizes[d];
    }
    for (int k = 0; k < N; ++k) {
      int64_t off = 0;
      for (int d = 0; d < ndim; ++d) off += idx[d] * strides[d][k];
      p[k] = base[k] + off;
    }
    int64_t pos = begin;
    while (pos < end) {
      int64_t n, rows, d;
      if (ndim >= 2 && idx[in] == 0 && end - pos >= inner) {
        d = in - 1;  // whole rows: as many as dim in-1 has left and the chunk allows
        n = inner;
        rows = std::min(sizes[d] - idx[d], (end - pos) / inner);
        fn(p, strides[in], strides[d], n, rows);
        pos += n * rows;
        idx[d] += rows;
        for (int k = 0; k < N; ++k) p[k] += rows * strides[d][k];
      } else {
        d = in;  // a partial row at the chunk's edges
        n = std::min(inner - idx[in], end - pos);
        rows = 1;
        fn(p, strides[in], strides[in], n, 1);
        pos += n;
        idx[d] += n;
        for (int k = 0; k < N; ++k) p[k] += n * strides[d][k];
      }
      if (pos >= end) break;
      for (; d > 0 && idx[d] == sizes[d]; --d) {  // carry
        idx[d] = 0;
        ++idx[d - 1];
        for (int k = 0; k < N; ++k) p[k] += strides[d - 1][k] - sizes[d] * strides[d][k];
      }
    }
  }
};

// Stores a tile computed down the rows, src[i * rr + r] (r < rr, i < cc), into rows of dst:
// dst[r * ldd + i]. The transposed-input tiles of binary and unary kernels end here; 4-byte
// types go through 4x4 SSE transposes, four rows of four at a time, instead of one scalar
// store per element.
template <typename T>
inline void store_transposed(T* dst, int64_t ldd, const T* src, int64_t rr, int64_t cc) {
  int64_t r = 0;
#if defined(__SSE2__)
  if constexpr (sizeof(T) == 4) {
    auto ld = [](const T* p) { return _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
    auto st = [](T* p, __m128 v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_castps_si128(v)); };
    for (; r + 4 <= rr; r += 4) {
      int64_t i = 0;
      for (; i + 4 <= cc; i += 4) {
        __m128 a0 = ld(src + i * rr + r), a1 = ld(src + (i + 1) * rr + r);
        __m128 a2 = ld(src + (i + 2) * rr + r), a3 = ld(src + (i + 3) * rr + r);
        _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
        st(dst + r * ldd + i, a0);
        st(dst + (r + 1) * ldd + i, a1);
        st(dst + (r + 2) * ldd + i, a2);
        st(dst + (r + 3) * ldd + i, a3);
      }
      for (; i < cc; ++i)
        for (int64_t k = 0; k < 4; ++k) dst[(r + k) * ldd + i] = src[i * rr + r + k];
    }
  }
#endif
  for (; r < rr; ++r)
    for (int64_t i = 0; i < cc; ++i) dst[r * ldd + i] = src[i * rr + r];
}

// Converts between storage and compute types (16-bit floats compute in float).
template <typename T> inline typename compute_type<T>::type load(const char* p) {
  return (typename compute_type<T>::type)(*reinterpret_cast<const T*>(p));
}
template <typename T, typename V> inline void store(char* p, V v) { *reinterpret_cast<T*>(p) = T(v); }

}  // namespace nd
