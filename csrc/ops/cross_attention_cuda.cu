// CUDA implementation of cross_attention (flash-style, CUDA cores): a block owns 16 query rows of one
// (batch, head), four warps of four rows each. Keys and values stream through shared memory 32 at a
// time (converted to fp32); lane j scores key j of the tile, the warp reduces max and sum for the
// online softmax, and each lane accumulates D/32 output dimensions. Tiles whose keys are all masked
// are skipped by the whole block. fp32 accumulation for every input dtype.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/cuda_common.cuh"
#include "ops/cross_attention.h"

namespace mersdk {
namespace {

using cuda::from_float;
using cuda::to_float;
constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kKeyTile = 32;  // one key per lane

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32)
    cross_attention_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                           const uint8_t* __restrict__ key_mask, int64_t H, int64_t Tq, int64_t Tk, float scale,
                           T* __restrict__ out) {
  constexpr int kPerLane = D / 32;
  __shared__ float q_s[kRowsPerBlock][D];
  __shared__ float k_s[kKeyTile][D + 1];  // +1: lane j reads row j, so rows must fall in distinct banks
  __shared__ float v_s[kKeyTile][D];
  __shared__ bool valid_s[kKeyTile];

  const int64_t b = blockIdx.z, bh = b * H + blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* qb = q + bh * Tq * D;
  const T* kb = k + bh * Tk * D;
  const T* vb = v + bh * Tk * D;

  for (int idx = threadIdx.x; idx < kRowsPerBlock * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    q_s[r][d] = (row0 + r < Tq) ? to_float(qb[(row0 + r) * D + d]) * scale : 0.0f;
  }

  float acc[kRowsPerWarp][kPerLane];
  float running_max[kRowsPerWarp], running_sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    running_max[r] = -INFINITY;
    running_sum[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) acc[r][c] = 0.0f;
  }

  for (int64_t j0 = 0; j0 < Tk; j0 += kKeyTile) {
    __syncthreads();  // the previous tile is no longer read
    bool my_valid = false;
    if (threadIdx.x < kKeyTile) {
      const int64_t j = j0 + threadIdx.x;
      my_valid = j < Tk && key_mask[b * Tk + j] != 0;
      valid_s[threadIdx.x] = my_valid;
    }
    if (!__syncthreads_or(my_valid)) continue;  // block-uniform: nothing to attend to in this tile
    for (int idx = threadIdx.x; idx < kKeyTile * D; idx += blockDim.x) {
      const int j = idx / D, d = idx % D;
      const bool in = j0 + j < Tk;
      k_s[j][d] = in ? to_float(kb[(j0 + j) * D + d]) : 0.0f;
      v_s[j][d] = in ? to_float(vb[(j0 + j) * D + d]) : 0.0f;
    }
    __syncthreads();

    const bool key_valid = valid_s[lane];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      float score = -INFINITY;
      if (key_valid) {
        float dot = 0.0f;
#pragma unroll 8
        for (int d = 0; d < D; ++d) dot = fmaf(q_s[row][d], k_s[lane][d], dot);
        score = dot;
      }
      const float new_max = fmaxf(running_max[r], warp_max(score));  // finite: the tile has a valid key
      const float p = key_valid ? expf(score - new_max) : 0.0f;
      const float correction = expf(running_max[r] - new_max);  // 0 while nothing was seen
      running_sum[r] = running_sum[r] * correction + warp_sum(p);
      running_max[r] = new_max;
#pragma unroll
      for (int c = 0; c < kPerLane; ++c) acc[r][c] *= correction;
      for (int j = 0; j < kKeyTile; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
        for (int c = 0; c < kPerLane; ++c) acc[r][c] = fmaf(pj, v_s[j][lane + 32 * c], acc[r][c]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t row = row0 + warp * kRowsPerWarp + r;
    if (row >= Tq) continue;
    const float inv = running_sum[r] > 0.0f ? 1.0f / running_sum[r] : 0.0f;  // no valid key: zeros
    T* o = out + (bh * Tq + row) * D;
#pragma unroll
    for (int c = 0; c < kPerLane; ++c) o[lane + 32 * c] = from_float<T>(acc[r][c] * inv);
  }
}

template <typename T, int D>
void launch(const void* q, const void* k, const void* v, const uint8_t* mask, const AttentionShape& s, void* out,
            cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((s.q_len + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(s.heads),
                  static_cast<unsigned>(s.batch));
  cross_attention_kernel<T, D><<<grid, kWarps * 32, 0, stream>>>(static_cast<const T*>(q), static_cast<const T*>(k),
                                                                 static_cast<const T*>(v), mask, s.heads, s.q_len,
                                                                 s.k_len, s.scale, static_cast<T*>(out));
}

template <typename T>
void launch_dtype(const void* q, const void* k, const void* v, const uint8_t* mask, const AttentionShape& s, void* out,
                  cudaStream_t stream) {
  switch (s.head_dim) {
    case 32: launch<T, 32>(q, k, v, mask, s, out, stream); break;
    case 64: launch<T, 64>(q, k, v, mask, s, out, stream); break;
    case 128: launch<T, 128>(q, k, v, mask, s, out, stream); break;
    default: throw std::invalid_argument("cross_attention (CUDA): head dim must be 32, 64 or 128");
  }
}

}  // namespace

void cross_attention_cuda(const void* q, const void* k, const void* v, const uint8_t* key_mask, const AttentionShape& s,
                          DType dtype, void* out, void* stream_ptr) {
  if (s.batch == 0 || s.heads == 0 || s.q_len == 0) return;
  if (s.batch > 65535 || s.heads > 65535)
    throw std::invalid_argument("cross_attention (CUDA): batch and heads must be <= 65535");
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  switch (dtype) {
    case DType::kFloat32: launch_dtype<float>(q, k, v, key_mask, s, out, stream); break;
    case DType::kFloat16: launch_dtype<__half>(q, k, v, key_mask, s, out, stream); break;
    case DType::kBFloat16: launch_dtype<__nv_bfloat16>(q, k, v, key_mask, s, out, stream); break;
    default: throw std::invalid_argument(std::string("cross_attention (CUDA): unsupported dtype ") + dtype_name(dtype));
  }
  cuda::check(cudaGetLastError(), "cross_attention (CUDA): launch");
}

}  // namespace mersdk
