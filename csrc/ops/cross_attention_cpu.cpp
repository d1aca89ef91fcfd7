// CPU implementation of cross_attention: one query row at a time against tiles of keys, with the
// running max / running sum of the online softmax; masked keys are dropped before any arithmetic,
// so padded lyrics cost nothing. OpenMP over (batch, head, query row).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cross_attention.h"

namespace mersdk {
namespace {

constexpr int64_t kKeyTile = 64;

template <int D>
void attend_rows(const float* q, const float* k, const float* v, const std::vector<std::vector<int64_t>>& valid_keys,
                 const AttentionShape& s, float* out) {
  const int64_t H = s.heads, Tq = s.q_len, Tk = s.k_len;
  const int64_t n_rows = s.batch * H * Tq;
  const float scale = s.scale;
#if defined(MERSDK_WITH_OPENMP)
#pragma omp parallel for schedule(static) if (n_rows * std::max<int64_t>(Tk, 1) * D > (1 << 16))
#endif
  for (int64_t row = 0; row < n_rows; ++row) {
    const int64_t bh = row / Tq, b = bh / H;
    const float* qr = q + row * D;
    const float* kb = k + bh * Tk * D;
    const float* vb = v + bh * Tk * D;
    float* o = out + row * D;
    const std::vector<int64_t>& keys = valid_keys[b];
    float acc[D];
    for (int d = 0; d < D; ++d) acc[d] = 0.0f;
    float running_max = -std::numeric_limits<float>::infinity(), running_sum = 0.0f;
    float scores[kKeyTile];
    const int64_t n_keys = static_cast<int64_t>(keys.size());
    for (int64_t j0 = 0; j0 < n_keys; j0 += kKeyTile) {
      const int64_t n = std::min(kKeyTile, n_keys - j0);
      float tile_max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        const float* kr = kb + keys[j0 + j] * D;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < D; ++d) dot += qr[d] * kr[d];
        scores[j] = dot * scale;
        tile_max = std::max(tile_max, scores[j]);
      }
      const float new_max = std::max(running_max, tile_max);
      const float correction = std::exp(running_max - new_max);  // exp(-inf) = 0 on the first tile
      running_sum *= correction;
      for (int d = 0; d < D; ++d) acc[d] *= correction;
      for (int64_t j = 0; j < n; ++j) {
        const float p = std::exp(scores[j] - new_max);
        running_sum += p;
        const float* vr = vb + keys[j0 + j] * D;
#pragma omp simd
        for (int d = 0; d < D; ++d) acc[d] += p * vr[d];
      }
      running_max = new_max;
    }
    // no valid key: zeros, as the reference (and the model's has_keys gate) expects
    const float inv = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
    for (int d = 0; d < D; ++d) o[d] = acc[d] * inv;
  }
}

}  // namespace

void cross_attention_cpu(const float* q, const float* k, const float* v, const uint8_t* key_mask,
                         const AttentionShape& s, float* out) {
  // the valid key indices of each batch row, shared by all its heads and queries
  std::vector<std::vector<int64_t>> valid_keys(static_cast<size_t>(s.batch));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t j = 0; j < s.k_len; ++j)
      if (key_mask[b * s.k_len + j]) valid_keys[b].push_back(j);
  switch (s.head_dim) {
    case 32: attend_rows<32>(q, k, v, valid_keys, s, out); break;
    case 64: attend_rows<64>(q, k, v, valid_keys, s, out); break;
    case 128: attend_rows<128>(q, k, v, valid_keys, s, out); break;
    default: throw std::invalid_argument("cross_attention_cpu: head dim must be 32, 64 or 128");
  }
}

}  // namespace mersdk
