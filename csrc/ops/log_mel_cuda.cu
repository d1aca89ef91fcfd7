// CUDA implementation of log_mel: one thread block per group of frames of one row does everything
// in shared memory -- framing and window, a radix-2 FFT of the n_fft/2-point complex sequence that
// packs the real frame (even samples real, odd samples imaginary), the split that turns it into the
// real spectrum, power, the sparse mel projection and the log -- so the signal is read once per
// frame and only the log-mel is written. fp32 arithmetic throughout; the output may be fp16/bf16.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/cuda_common.cuh"
#include "ops/log_mel.h"

namespace mersdk {
namespace {

using cuda::from_float;
constexpr int kThreads = 256;

struct KernelArgs {
  const float* signal;
  int64_t n_samples;
  const int64_t* lengths;
  const float* window;
  const int32_t* mel_first;
  const int32_t* mel_offset;
  const float* mel_weights;
  int n_fft, log2_half, hop, n_mels, frames_per_block;
  int64_t n_frames;
  Compression compression;
  float log_floor, log_gain;
};

template <typename OutT>
__global__ void __launch_bounds__(kThreads) log_mel_kernel(KernelArgs a, OutT* __restrict__ out) {
  extern __shared__ float2 smem[];
  const int M = a.n_fft / 2;  // complex FFT length
  const int FB = a.frames_per_block;
  float2* z = smem;                                          // [FB][M]
  float2* twiddle = z + FB * M;                              // [M/2]: exp(-2 pi i j / M)
  float* power = reinterpret_cast<float*>(twiddle + M / 2);  // [FB][M + 1]

  const int64_t b = blockIdx.y;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * FB;
  const int64_t len = min(max(a.lengths[b], int64_t(0)), a.n_samples);
  const int64_t valid_frames = 1 + len / a.hop;
  const int n_here = static_cast<int>(a.n_frames - t0 < FB ? a.n_frames - t0 : FB);
  OutT* out_row = out + b * a.n_mels * a.n_frames;

  if (t0 >= valid_frames) {  // block-uniform: only padding frames here
    for (int idx = threadIdx.x; idx < n_here * a.n_mels; idx += blockDim.x)
      out_row[(idx / n_here) * a.n_frames + t0 + idx % n_here] = from_float<OutT>(0.0f);
    return;
  }

  for (int j = threadIdx.x; j < M / 2; j += blockDim.x) {
    float s, c;
    sincospif(-2.0f * j / M, &s, &c);
    twiddle[j] = make_float2(c, s);
  }
  // framing + window, written bit-reversed so the in-place DIT FFT below yields natural order
  const float* x = a.signal + b * a.n_samples;
  for (int idx = threadIdx.x; idx < FB * M; idx += blockDim.x) {
    const int f = idx / M, n = idx % M;
    const int64_t t = t0 + f;
    float2 v = make_float2(0.0f, 0.0f);
    if (t < valid_frames) {
      const int64_t i0 = t * a.hop - M + 2 * n;  // padded position minus n_fft/2 = signal index
      if (i0 >= 0 && i0 < len) v.x = x[i0] * a.window[2 * n];
      if (i0 + 1 >= 0 && i0 + 1 < len) v.y = x[i0 + 1] * a.window[2 * n + 1];
    }
    z[f * M + (__brev(static_cast<unsigned>(n)) >> (32 - a.log2_half))] = v;
  }
  __syncthreads();

  for (int half = 1; half < M; half *= 2) {
    const int stride = M / (2 * half);
    for (int idx = threadIdx.x; idx < FB * (M / 2); idx += blockDim.x) {
      const int f = idx / (M / 2), r = idx % (M / 2);
      const int pos = r & (half - 1);
      const int i = (r / half) * 2 * half + pos, j = i + half;
      const float2 w = twiddle[pos * stride];
      const float2 u = z[f * M + i], v = z[f * M + j];
      const float2 wv = make_float2(w.x * v.x - w.y * v.y, w.x * v.y + w.y * v.x);
      z[f * M + i] = make_float2(u.x + wv.x, u.y + wv.y);
      z[f * M + j] = make_float2(u.x - wv.x, u.y - wv.y);
    }
    __syncthreads();
  }

  // real spectrum X[k] = E[k] + exp(-i pi k / M) O[k], with E = (Z[k] + conj Z[M-k]) / 2 the
  // transform of the even samples and O = (Z[k] - conj Z[M-k]) / 2i that of the odd ones
  for (int idx = threadIdx.x; idx < FB * (M + 1); idx += blockDim.x) {
    const int f = idx / (M + 1), k = idx % (M + 1);
    const float2 zk = z[f * M + (k % M)], zm = z[f * M + ((M - k) % M)];
    const float er = 0.5f * (zk.x + zm.x), ei = 0.5f * (zk.y - zm.y);
    const float or_ = 0.5f * (zk.y + zm.y), oi = -0.5f * (zk.x - zm.x);
    float s, c;
    sincospif(-static_cast<float>(k) / M, &s, &c);
    const float xr = er + c * or_ - s * oi, xi = ei + c * oi + s * or_;
    power[f * (M + 1) + k] = xr * xr + xi * xi;
  }
  __syncthreads();

  // neighbouring threads take neighbouring frames of one mel band: their writes are contiguous
  for (int idx = threadIdx.x; idx < FB * a.n_mels; idx += blockDim.x) {
    const int f = idx % FB, m = idx / FB;
    if (f >= n_here) continue;
    const int64_t t = t0 + f;
    float v = 0.0f;
    if (t < valid_frames) {
      const int first = a.mel_first[m], begin = a.mel_offset[m], end = a.mel_offset[m + 1];
      const float* p = power + f * (M + 1) + first;
      float acc = 0.0f;
      for (int i = begin; i < end; ++i) acc = fmaf(__ldg(a.mel_weights + i), p[i - begin], acc);
      v = compress_mel(acc, a.compression, a.log_floor, a.log_gain);
    }
    out_row[static_cast<int64_t>(m) * a.n_frames + t] = from_float<OutT>(v);
  }
}

size_t align16(size_t n) { return (n + 15) & ~size_t(15); }

}  // namespace

void log_mel_cuda(const float* signal, const LogMelHostConstants& c, const LogMelShape& s, void* out, DType out_dtype,
                  void* stream_ptr) {
  const int64_t n_fft = s.n_fft;
  if (n_fft < 16 || n_fft > 4096 || (n_fft & (n_fft - 1)))
    throw std::invalid_argument("log_mel (CUDA): n_fft must be a power of two in [16, 4096], got " +
                                std::to_string(n_fft));
  if (s.batch == 0 || s.n_frames == 0) return;
  if (s.batch > 65535) throw std::invalid_argument("log_mel (CUDA): batch must be <= 65535");
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);

  // one small upload of every host-side constant, stream-ordered with the kernel
  const CompactFilterbank fb = compact_filterbank(c.filterbank, s.n_mels, s.n_bins());
  const size_t off_len = 0;
  const size_t off_win = align16(off_len + s.batch * sizeof(int64_t));
  const size_t off_first = align16(off_win + n_fft * sizeof(float));
  const size_t off_offset = align16(off_first + fb.first.size() * sizeof(int32_t));
  const size_t off_weights = align16(off_offset + fb.offset.size() * sizeof(int32_t));
  const size_t total = align16(off_weights + std::max<size_t>(fb.weights.size(), 1) * sizeof(float));
  std::vector<unsigned char> host(total, 0);
  std::memcpy(host.data() + off_len, c.lengths, s.batch * sizeof(int64_t));
  std::memcpy(host.data() + off_win, c.window, n_fft * sizeof(float));
  std::memcpy(host.data() + off_first, fb.first.data(), fb.first.size() * sizeof(int32_t));
  std::memcpy(host.data() + off_offset, fb.offset.data(), fb.offset.size() * sizeof(int32_t));
  if (!fb.weights.empty()) std::memcpy(host.data() + off_weights, fb.weights.data(), fb.weights.size() * sizeof(float));

  unsigned char* dev = nullptr;
  cuda::check(cudaMallocAsync(reinterpret_cast<void**>(&dev), total, stream), "log_mel (CUDA): alloc");
  // from pageable memory this returns once `host` has been staged, so `host` may die after it
  cuda::check(cudaMemcpyAsync(dev, host.data(), total, cudaMemcpyHostToDevice, stream), "log_mel (CUDA): upload");

  KernelArgs a;
  a.signal = signal;
  a.n_samples = s.n_samples;
  a.lengths = reinterpret_cast<const int64_t*>(dev + off_len);
  a.window = reinterpret_cast<const float*>(dev + off_win);
  a.mel_first = reinterpret_cast<const int32_t*>(dev + off_first);
  a.mel_offset = reinterpret_cast<const int32_t*>(dev + off_offset);
  a.mel_weights = reinterpret_cast<const float*>(dev + off_weights);
  a.n_fft = static_cast<int>(n_fft);
  a.log2_half = 0;
  while ((int64_t(1) << (a.log2_half + 1)) <= n_fft / 2) ++a.log2_half;
  a.hop = static_cast<int>(s.hop);
  a.n_mels = static_cast<int>(s.n_mels);
  a.frames_per_block = static_cast<int>(std::clamp<int64_t>(4096 / n_fft, 1, 16));
  a.n_frames = s.n_frames;
  a.compression = s.compression;
  a.log_floor = s.log_floor;
  a.log_gain = s.log_gain;

  const int M = a.n_fft / 2, FB = a.frames_per_block;
  const size_t shared = FB * M * sizeof(float2) + (M / 2) * sizeof(float2) + FB * (M + 1) * sizeof(float);
  const dim3 grid(static_cast<unsigned>((s.n_frames + FB - 1) / FB), static_cast<unsigned>(s.batch));
  switch (out_dtype) {
    case DType::kFloat32: log_mel_kernel<float><<<grid, kThreads, shared, stream>>>(a, static_cast<float*>(out)); break;
    case DType::kFloat16:
      log_mel_kernel<__half><<<grid, kThreads, shared, stream>>>(a, static_cast<__half*>(out));
      break;
    case DType::kBFloat16:
      log_mel_kernel<__nv_bfloat16><<<grid, kThreads, shared, stream>>>(a, static_cast<__nv_bfloat16*>(out));
      break;
    default:
      cudaFreeAsync(dev, stream);
      throw std::invalid_argument(std::string("log_mel (CUDA): unsupported output dtype ") + dtype_name(out_dtype));
  }
  const cudaError_t launch = cudaGetLastError();
  cuda::check(cudaFreeAsync(dev, stream), "log_mel (CUDA): free");
  cuda::check(launch, "log_mel (CUDA): launch");
}

}  // namespace mersdk
