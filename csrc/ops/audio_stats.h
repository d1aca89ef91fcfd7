// audio_stats: one pass over a float32 signal giving its peak, RMS and count of non-finite samples.
// Used by input validation (NaN/Inf rejection, silence detection) before any heavier work.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mersdk {

struct AudioStats {
  float peak = 0.0f;        // max |x| over finite samples
  double rms = 0.0;         // sqrt(mean(x^2)) over finite samples
  int64_t n_nonfinite = 0;  // NaN or +-Inf samples
};

AudioStats audio_stats_cpu(const float* x, int64_t n);

#ifdef MERSDK_WITH_CUDA
// x is a device pointer; runs on `stream` (a cudaStream_t passed as void* to keep CUDA out of
// this header) and synchronises it before returning.
AudioStats audio_stats_cuda(const float* x, int64_t n, void* stream);
#endif

}  // namespace mersdk
