// CUDA implementation of audio_stats: grid-stride reduction, one atomic per block.
#include "ops/audio_stats.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mersdk {
namespace {

__global__ void audio_stats_kernel(const float* __restrict__ x, int64_t n, unsigned int* peak_bits,
                                   double* sumsq, unsigned long long* bad) {
  float peak = 0.0f;
  double ss = 0.0;
  unsigned long long nb = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    if (isfinite(v)) {
      peak = fmaxf(peak, fabsf(v));
      ss += (double)v * v;
    } else {
      ++nb;
    }
  }
  // warp reduce, then one atomic per warp (peak >= 0, so its bit pattern orders like an unsigned int)
  for (int o = 16; o > 0; o >>= 1) {
    peak = fmaxf(peak, __shfl_down_sync(0xffffffffu, peak, o));
    ss += __shfl_down_sync(0xffffffffu, ss, o);
    nb += __shfl_down_sync(0xffffffffu, nb, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMax(peak_bits, __float_as_uint(peak));
    atomicAdd(sumsq, ss);
    atomicAdd(bad, nb);
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("audio_stats_cuda: ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace

AudioStats audio_stats_cuda(const float* x, int64_t n, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  struct Acc { unsigned int peak; double sumsq; unsigned long long bad; };
  Acc* d = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&d), sizeof(Acc), stream), "alloc");
  check(cudaMemsetAsync(d, 0, sizeof(Acc), stream), "memset");
  if (n > 0) {
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 1024));
    audio_stats_kernel<<<blocks, threads, 0, stream>>>(x, n, &d->peak, &d->sumsq, &d->bad);
    check(cudaGetLastError(), "launch");
  }
  Acc h{};
  check(cudaMemcpyAsync(&h, d, sizeof(Acc), cudaMemcpyDeviceToHost, stream), "copy");
  check(cudaFreeAsync(d, stream), "free");
  check(cudaStreamSynchronize(stream), "sync");
  AudioStats s;
  std::memcpy(&s.peak, &h.peak, sizeof(float));
  const int64_t good = n - static_cast<int64_t>(h.bad);
  s.rms = good > 0 ? std::sqrt(h.sumsq / static_cast<double>(good)) : 0.0;
  s.n_nonfinite = static_cast<int64_t>(h.bad);
  return s;
}

}  // namespace mersdk
