#include "tensor.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <sstream>

#include "dispatch.h"
#include "ops_gen.h"

namespace nd {

std::string Device::str() const {
  std::string name = device_type_name(type);
  if (type == 0) return name;
  return name + ":" + std::to_string(index);
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (auto v : s) n *= v;
  return n;
}

Shape contiguous_strides(const Shape& sizes) {
  Shape st(sizes.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)sizes.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(sizes[i], 1);
  }
  return st;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  if (d < -n || d >= n)
    throw IndexError(std::string("[") + op + "] dimension out of range (expected to be in range of [" +
                     std::to_string(-n) + ", " + std::to_string(n - 1) + "], but got " + std::to_string(d) + ")");
  return d < 0 ? d + n : d;
}

int64_t Tensor::size(int64_t d) const { return impl_->sizes[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return impl_->strides[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    int64_t sz = impl_->sizes[i];
    if (sz == 1) continue;
    if (sz == 0) return true;
    if (impl_->strides[i] != expected) return false;
    expected *= sz;
  }
  return true;
}

Tensor Tensor::view_of(Shape sizes, Shape strides, int64_t offset) const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = impl_->dtype;
  return Tensor(std::move(impl));
}

// ---- caching host allocator ------------------------------------------------------------------
// Note [Caching large host blocks]
// A fresh 40 MB output costs ~10k page faults, which halves the bandwidth of a simple add
// (torch's 1e7 add runs at ~10 GB/s for this reason), so freed blocks are kept and handed out
// again with their pages already mapped. Blocks up to 256 bytes go straight to malloc, whose
// per-thread cache serves them in a few nanoseconds. The sizes between (a 28x28 image is 3 KB)
// are rounded to a size class (four per power of two) and kept in a per-class stack: glibc
// serves them from its main heap, where each free merges neighbours (malloc_consolidate) and
// cost a fifth of a small op.
//
// Blocks of 1 MB and more are carved from segments of at least 4 MB: a request takes the
// smallest free block that fits (best fit) and leaves the rest free, and a freed block merges
// with its free neighbours. A cache keyed by exact size cannot lend one phase's blocks to the
// next: a training step frees its 1 MB activations during backward while it asks for 4 MB
// weight gradients, and the reverse after zero_grad, so it kept both sets: a 20-layer MLP
// step (Linear(1024, 1024), batch 256), whose tensors peak at ~171 MB, held 203 MB, and holds
// 183 MB with shared segments. The split is what the minimum segment size is for: four 1 MB
// activations share one segment, which is whole again for a gradient once they are freed.
namespace {
constexpr size_t kSmallBlock = 256;
constexpr size_t kLargeBlock = 1 << 20;
constexpr size_t kSegment = size_t(4) << 20;            // least memory asked of the OS at once
constexpr size_t kCacheLimit = size_t(2) << 30;         // free bytes kept in segments
constexpr int kMediumClasses = 48;                      // four per power of two in (256 B, 1 MB)
constexpr size_t kMediumCacheLimit = size_t(64) << 20;  // bytes kept across all medium classes

// A piece of a segment, free or lent to a storage. prev/next are its neighbours by address in
// the same segment (null at the segment's ends), so a block with neither is a whole segment.
struct Block {
  char* ptr;
  size_t size;
  Block* prev;
  Block* next;
  bool free;
};
struct BySizeThenAddress {
  bool operator()(const Block* a, const Block* b) const {
    return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
  }
};

struct BlockCache {
  std::mutex mu;
  std::set<Block*, BySizeThenAddress> free_blocks;  // lower_bound is the best fit
  size_t cached_bytes = 0;                          // bytes in free_blocks
  std::vector<void*> medium[kMediumClasses];
  size_t medium_bytes = 0;
};
BlockCache& cache() {
  static auto* c = [] {
    auto* fresh = new BlockCache();  // leaked on purpose: storages may die after static teardown
    // A DataLoader worker forks while the pool or another Python thread may be inside the
    // cache; holding the lock across fork gives the child a consistent, unlocked cache.
    pthread_atfork([] { cache().mu.lock(); }, [] { cache().mu.unlock(); }, [] { cache().mu.unlock(); });
    return fresh;
  }();
  return *c;
}
size_t round_block(size_t n) { return (n + 65535) & ~size_t(65535); }

// Size class of a medium request n (kSmallBlock < n < kLargeBlock) and the class's block size.
int medium_class(size_t n, size_t* block) {
  int p = 63 - __builtin_clzll((unsigned long long)(n - 1));  // 8 <= p <= 19
  size_t k = (n - 1) >> (p - 2);                             // 4..7
  *block = (k + 1) << (p - 2);
  return 4 * (p - 8) + (int)(k - 4);
}

void* raw_alloc(size_t nbytes) {
  if (nbytes <= kSmallBlock) {  // malloc's 16-byte alignment is enough for any element type
    void* p = std::malloc(nbytes ? nbytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  size_t align = nbytes >= kSegment ? (size_t(2) << 20) : 64;
  void* p = nullptr;
  if (posix_memalign(&p, align, nbytes ? nbytes : 1) != 0) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (align > 64) madvise(p, nbytes, MADV_HUGEPAGE);
#endif
  return p;
}

// Lends the first `want` bytes of free block b (already out of free_blocks); the rest stays free.
Block* take_block(BlockCache& c, Block* b, size_t want) {
  if (b->size > want) {
    Block* rest = new Block{b->ptr + want, b->size - want, b, b->next, true};
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = want;
    c.free_blocks.insert(rest);
    c.cached_bytes += rest->size;
  }
  b->free = false;
  return b;
}

void release_whole_segments(BlockCache& c) {
  for (auto it = c.free_blocks.begin(); it != c.free_blocks.end();) {
    Block* b = *it;
    if (b->prev || b->next) {
      ++it;
      continue;
    }
    it = c.free_blocks.erase(it);
    c.cached_bytes -= b->size;
    std::free(b->ptr);
    delete b;
  }
}

Block* large_alloc(size_t nbytes) {
  size_t want = round_block(nbytes);
  auto& c = cache();
  {
    std::lock_guard<std::mutex> g(c.mu);
    Block key{nullptr, want, nullptr, nullptr, true};
    auto it = c.free_blocks.lower_bound(&key);
    if (it != c.free_blocks.end()) {
      Block* b = *it;
      c.free_blocks.erase(it);
      c.cached_bytes -= b->size;
      return take_block(c, b, want);
    }
  }
  size_t seg = std::max(want, kSegment);
  void* p = nullptr;
  try {
    p = raw_alloc(seg);
  } catch (const std::bad_alloc&) {
    empty_host_cache();
    seg = want;  // the spare part of a segment is the first thing to give up
    p = raw_alloc(seg);
  }
  auto* b = new Block{static_cast<char*>(p), seg, nullptr, nullptr, true};
  std::lock_guard<std::mutex> g(c.mu);
  return take_block(c, b, want);
}

void large_free(Block* b) {
  auto& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  b->free = true;
  // A free neighbour leaves the set before its size (the set's key) changes, and its bytes are
  // counted again with the merged block; `right` is absorbed into `left`.
  auto merge = [&c](Block* left, Block* right, Block* cached) {
    c.free_blocks.erase(cached);
    c.cached_bytes -= cached->size;
    left->size += right->size;
    left->next = right->next;
    if (right->next) right->next->prev = left;
    delete right;
    return left;
  };
  if (Block* n = b->next; n && n->free) b = merge(b, n, n);
  if (Block* pv = b->prev; pv && pv->free) b = merge(pv, b, pv);
  // Over the limit only a whole segment can go back; a free piece of a segment in use waits for
  // its neighbours.
  if (!b->prev && !b->next && c.cached_bytes + b->size > kCacheLimit) {
    std::free(b->ptr);
    delete b;
    return;
  }
  c.free_blocks.insert(b);
  c.cached_bytes += b->size;
}

// Medium requests (kSmallBlock < n < kLargeBlock): *actual is the class's block size.
void* medium_alloc(size_t nbytes, size_t* actual) {
  int cls = medium_class(nbytes, actual);
  {
    auto& c = cache();
    std::lock_guard<std::mutex> g(c.mu);
    auto& stack = c.medium[cls];
    if (!stack.empty()) {
      void* p = stack.back();
      stack.pop_back();
      c.medium_bytes -= *actual;
      return p;
    }
  }
  return raw_alloc(*actual);
}

void medium_free(void* p, size_t block) {
  size_t unused = 0;
  int cls = medium_class(block, &unused);
  {
    auto& c = cache();
    std::lock_guard<std::mutex> g(c.mu);
    if (c.medium_bytes + block <= kMediumCacheLimit) {
      c.medium[cls].push_back(p);
      c.medium_bytes += block;
      return;
    }
  }
  std::free(p);
}
}  // namespace

void empty_host_cache() {
  auto& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  release_whole_segments(c);
  for (auto& stack : c.medium) {
    for (void* p : stack) std::free(p);
    stack.clear();
  }
  c.medium_bytes = 0;
}

namespace {
// A small CPU tensor's bytes live in its Storage object: one allocation instead of three
// (storage, bytes, the owner's control block) for scalars and per-sample values.
constexpr size_t kInlineBytes = 32;
struct InlineStorage : Storage {
  alignas(16) unsigned char bytes[kInlineBytes];  // malloc's alignment, as raw_alloc gives small blocks
};
}  // namespace

std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device) {
  if (!device.is_cpu()) {
    DeviceBackend* b = device_backend(device.type);
    if (!b) throw ValueError("unknown device type " + std::to_string(device.type));
    return b->allocate(nbytes, device);
  }
  if (nbytes <= kInlineBytes) {
    auto s = std::make_shared<InlineStorage>();
    s->data = s->bytes;
    s->nbytes = nbytes;
    return s;
  }
  auto s = std::make_shared<Storage>();
  s->nbytes = nbytes;
  if (nbytes <= kSmallBlock) {
    s->data = raw_alloc(nbytes);
    s->owner = std::shared_ptr<void>(s->data, [](void* q) { std::free(q); });
  } else if (nbytes < kLargeBlock) {
    size_t block = 0;
    s->data = medium_alloc(nbytes, &block);
    s->owner = std::shared_ptr<void>(s->data, [block](void* q) { medium_free(q, block); });
  } else {
    Block* b = large_alloc(nbytes);
    s->data = b->ptr;
    s->owner = std::shared_ptr<void>(s->data, [b](void*) { large_free(b); });
  }
  return s;
}

Tensor empty_tensor(const Shape& sizes, DType dtype, Device device) {
  uint64_t total = nd::itemsize(dtype);
  for (auto v : sizes) {
    if (v < 0) throw ValueError("[empty] negative dimension in size " + shape_str(sizes));
    if (v != 0 && __builtin_mul_overflow(total, (uint64_t)v, &total))
      throw ValueError("[empty] size " + shape_str(sizes) + " overflows the addressable memory");
  }
  if (numel_of(sizes) != 0 && total > (uint64_t(1) << 46))
    throw ValueError("[empty] size " + shape_str(sizes) + " of " + dtype_name(dtype) + " needs " + std::to_string(total) +
                     " bytes, more than this machine can address");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = allocate_storage((size_t)numel_of(sizes) * nd::itemsize(dtype), device);
  impl->sizes = sizes;
  impl->strides = contiguous_strides(sizes);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor scalar_tensor(double v, DType dtype, bool wrapped) {
  Tensor t = empty_tensor({}, dtype, Device{});
  ND_DISPATCH_ALL(dtype, "scalar_tensor", [&] { *t.data<scalar_t>() = scalar_t((typename compute_type<scalar_t>::type)v); });
  t.impl()->wrapped_number = wrapped;
  return t;
}
Tensor scalar_tensor_int(int64_t v, DType dtype, bool wrapped) {
  Tensor t = empty_tensor({}, dtype, Device{});
  ND_DISPATCH_ALL(dtype, "scalar_tensor", [&] { *t.data<scalar_t>() = scalar_t((typename compute_type<scalar_t>::type)v); });
  t.impl()->wrapped_number = wrapped;
  return t;
}
Tensor scalar_tensor_bool(bool v, bool wrapped) {
  Tensor t = empty_tensor({}, DType::Bool, Device{});
  *t.data<bool>() = v;
  t.impl()->wrapped_number = wrapped;
  return t;
}

// ---- member conveniences for the C++ API (seed's jacobi_solve style) ---------------------------
Tensor Tensor::clone() const { return nd::clone(*this); }
Tensor Tensor::contiguous() const { return is_contiguous() ? *this : nd::clone(*this, "contiguous_format"); }
Tensor Tensor::to(DType t) const { return t == dtype() ? *this : nd::_to_copy(*this, t); }
Tensor Tensor::operator-() const { return nd::neg(*this); }
Tensor& Tensor::zero_() {
  nd::zero_(*this);
  return *this;
}
Tensor& Tensor::operator+=(const Tensor& o) {
  nd::add_(*this, o);
  return *this;
}
Tensor& Tensor::operator-=(const Tensor& o) {
  nd::sub_(*this, o);
  return *this;
}
Tensor& Tensor::operator*=(const Tensor& o) {
  nd::mul_(*this, o);
  return *this;
}
Tensor& Tensor::operator/=(const Tensor& o) {
  nd::div_(*this, o);
  return *this;
}
Tensor Tensor::as_strided(const Shape& sizes, const Shape& strides, int64_t off) const {
  return nd::as_strided(*this, sizes, strides, off < 0 ? std::optional<int64_t>() : std::optional<int64_t>(off));
}
Tensor Tensor::diag(int64_t diagonal) const { return nd::diag(*this, diagonal); }
Tensor Tensor::unsqueeze(int64_t d) const { return nd::unsqueeze(*this, d); }
Tensor Tensor::view(const Shape& s) const { return nd::view(*this, s); }
Tensor Tensor::reshape(const Shape& s) const { return nd::reshape(*this, s); }
Tensor Tensor::sum() const { return nd::sum(*this); }
double Tensor::item_double() const {
  if (numel() != 1) throw ValueError("[item] a Tensor with " + std::to_string(numel()) + " elements cannot be converted to Scalar");
  Tensor c = device().is_cpu() ? *this : nd::_to_copy(*this, std::nullopt, Device{});
  double v = 0;
  ND_DISPATCH_ALL(c.dtype(), "item", [&] { v = (double)(typename compute_type<scalar_t>::type)(*c.data<scalar_t>()); });
  return v;
}

}  // namespace nd
