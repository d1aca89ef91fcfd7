// CPU implementation of cross_attention: blocks of four query rows against tiles of keys, with the
// running max / running sum of the online softmax; masked keys are dropped before any arithmetic,
// so padded lyrics cost nothing. OpenMP over (batch, head, row block); the inner loops are compiled
// per ISA (AVX-512, AVX2, baseline; chosen by CPU features, not CPU model names, which virtual
// machines often hide) and picked at load time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/cross_attention.h"

namespace mersdk {
namespace {

constexpr int64_t kKeyTile = 64;
constexpr int kRowBlock = 4;  // query rows sharing each key/value row load

// exp for x <= 0 (the softmax's shifted scores) in plain arithmetic, so the loop calling it
// vectorises: std::exp does not without -ffast-math, and costs more than the dot products.
// Cephes expf polynomial, ~2 ulp; inputs below -87.3 (e.g. -inf) give ~1e-38, not 0, which the
// online softmax only ever multiplies into sums that are still zero.
inline float exp_nonpositive(float x) {
  x = std::max(x, -87.3f);
  const float t = x * 1.44269504088896341f;
  const int32_t n = static_cast<int32_t>(t - 0.5f);  // round half down for t <= 0: truncation of t - 0.5
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Online-softmax attention of up to kRowBlock query rows (already scaled) of one (batch, head)
// over the listed valid keys. Inlined into per-ISA clones below, so its loops vectorise for the
// machine it runs on while the wheel stays portable.
// 16 floats: one AVX-512 register, two AVX2 or four SSE registers in the clones below. Explicit
// vectors, because GCC's auto-vectoriser leaves these loops scalar once they are inlined into the
// per-ISA clones.
typedef float Vec16 __attribute__((vector_size(64)));
inline Vec16 load16(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float sum16(Vec16 v) {
  float s = 0.0f;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}

typedef int32_t Int16 __attribute__((vector_size(64)));

// exp_nonpositive on 16 lanes (same polynomial and rounding as the scalar one above)
inline Vec16 exp16_nonpositive(Vec16 x) {
  const Vec16 zero = {};
  const Vec16 lo = zero - 87.3f;
  x = x < lo ? lo : x;
  const Vec16 t = x * 1.44269504088896341f;
  const Int16 n = __builtin_convertvector(t - 0.5f, Int16);
  const Vec16 nf = __builtin_convertvector(n, Vec16);
  const Vec16 r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  Vec16 p = zero + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const Int16 bits = (n + 127) << 23;
  Vec16 scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

template <int D>
__attribute__((always_inline)) inline void attend_block(const float* q, int n_rows, const float* kb, const float* vb,
                                                        const int64_t* keys, int64_t n_keys, float* out) {
  constexpr int kChunks = D / 16;
  Vec16 qs[kRowBlock][kChunks] = {};
  for (int r = 0; r < n_rows; ++r)
    for (int c = 0; c < kChunks; ++c) qs[r][c] = load16(q + r * D + 16 * c);
  Vec16 acc[kRowBlock][kChunks] = {};
  float running_max[kRowBlock], running_sum[kRowBlock] = {};
  for (int r = 0; r < kRowBlock; ++r) running_max[r] = -std::numeric_limits<float>::infinity();
  float scores[kRowBlock][kKeyTile];
  for (int64_t j0 = 0; j0 < n_keys; j0 += kKeyTile) {
    const int64_t n = std::min(kKeyTile, n_keys - j0);
    for (int64_t j = 0; j < n; ++j) {
      const float* kr = kb + keys[j0 + j] * D;
      Vec16 d[kRowBlock] = {};
      for (int c = 0; c < kChunks; ++c) {
        const Vec16 kv = load16(kr + 16 * c);
        for (int r = 0; r < kRowBlock; ++r) d[r] += qs[r][c] * kv;
      }
      for (int r = 0; r < kRowBlock; ++r) scores[r][j] = sum16(d[r]);
    }
    // the tile tail reads as -inf: it adds nothing to the max and ~1e-38 (not 0) to a sum >= 1
    for (int r = 0; r < kRowBlock; ++r)
      for (int64_t j = n; j < kKeyTile; ++j) scores[r][j] = -std::numeric_limits<float>::infinity();
    for (int r = 0; r < kRowBlock; ++r) {
      Vec16 vmax = load16(scores[r]);
      for (int c = 1; c < kKeyTile / 16; ++c) {
        const Vec16 x = load16(scores[r] + 16 * c);
        vmax = x > vmax ? x : vmax;
      }
      float tile_max = vmax[0];
      for (int i = 1; i < 16; ++i) tile_max = std::max(tile_max, vmax[i]);
      const float new_max = std::max(running_max[r], tile_max);
      const float correction = std::exp(running_max[r] - new_max);  // exp(-inf) = 0 on the first tile
      Vec16 vsum = {};
      for (int c = 0; c < kKeyTile / 16; ++c) {
        const Vec16 e = exp16_nonpositive(load16(scores[r] + 16 * c) - new_max);
        std::memcpy(scores[r] + 16 * c, &e, sizeof e);
        vsum += e;
      }
      running_sum[r] = running_sum[r] * correction + sum16(vsum);
      running_max[r] = new_max;
      for (int c = 0; c < kChunks; ++c) acc[r][c] *= correction;
    }
    for (int64_t j = 0; j < n; ++j) {
      const float* vr = vb + keys[j0 + j] * D;
      for (int c = 0; c < kChunks; ++c) {
        const Vec16 vv = load16(vr + 16 * c);
        for (int r = 0; r < kRowBlock; ++r) acc[r][c] += scores[r][j] * vv;
      }
    }
  }
  for (int r = 0; r < n_rows; ++r) {
    // no valid key: zeros, as the reference (and the model's has_keys gate) expects
    const float inv = running_sum[r] > 0.0f ? 1.0f / running_sum[r] : 0.0f;
    for (int c = 0; c < kChunks; ++c) {
      const Vec16 o = acc[r][c] * inv;
      std::memcpy(out + r * D + 16 * c, &o, sizeof o);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define MERSDK_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MERSDK_ISA_CLONES
#endif

using BlockFn = void (*)(const float*, int, const float*, const float*, const int64_t*, int64_t, float*);
MERSDK_ISA_CLONES void attend_block_32(const float* q, int n, const float* k, const float* v, const int64_t* keys,
                                       int64_t nk, float* o) {
  attend_block<32>(q, n, k, v, keys, nk, o);
}
MERSDK_ISA_CLONES void attend_block_64(const float* q, int n, const float* k, const float* v, const int64_t* keys,
                                       int64_t nk, float* o) {
  attend_block<64>(q, n, k, v, keys, nk, o);
}
MERSDK_ISA_CLONES void attend_block_128(const float* q, int n, const float* k, const float* v, const int64_t* keys,
                                        int64_t nk, float* o) {
  attend_block<128>(q, n, k, v, keys, nk, o);
}

}  // namespace

void cross_attention_cpu(const float* q, const float* k, const float* v, const uint8_t* key_mask,
                         const AttentionShape& s, float* out) {
  const int64_t D = s.head_dim, H = s.heads, Tq = s.q_len, Tk = s.k_len;
  BlockFn block = D == 32 ? attend_block_32 : D == 64 ? attend_block_64 : D == 128 ? attend_block_128 : nullptr;
  if (!block) throw std::invalid_argument("cross_attention_cpu: head dim must be 32, 64 or 128");
  // the valid key indices of each batch row, shared by all its heads and queries
  std::vector<std::vector<int64_t>> valid_keys(static_cast<size_t>(s.batch));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t j = 0; j < Tk; ++j)
      if (key_mask[b * Tk + j]) valid_keys[b].push_back(j);
  // pre-scaled queries, so the kernel's scores need no multiply
  std::vector<float> q_scaled(static_cast<size_t>(s.batch * H * Tq * D));
  for (size_t i = 0; i < q_scaled.size(); ++i) q_scaled[i] = q[i] * s.scale;
  const int64_t blocks_per_head = (Tq + kRowBlock - 1) / kRowBlock;
  const int64_t n_items = s.batch * H * blocks_per_head;
#if defined(MERSDK_WITH_OPENMP)
#pragma omp parallel for schedule(static) if (n_items * std::max<int64_t>(Tk, 1) * D > (1 << 16))
#endif
  for (int64_t item = 0; item < n_items; ++item) {
    const int64_t bh = item / blocks_per_head, b = bh / H;
    const int64_t row0 = (item % blocks_per_head) * kRowBlock;
    const int n_rows = static_cast<int>(std::min<int64_t>(kRowBlock, Tq - row0));
    const std::vector<int64_t>& keys = valid_keys[b];
    block(q_scaled.data() + (bh * Tq + row0) * D, n_rows, k + bh * Tk * D, v + bh * Tk * D, keys.data(),
          static_cast<int64_t>(keys.size()), out + (bh * Tq + row0) * D);
  }
}

}  // namespace mersdk
