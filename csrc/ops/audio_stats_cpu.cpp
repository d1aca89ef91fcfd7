// CPU implementation of audio_stats: a vectorisable reduction, split across threads for long signals.
#include "ops/audio_stats.h"

#include <cmath>

namespace mersdk {

AudioStats audio_stats_cpu(const float* x, int64_t n) {
  float peak = 0.0f;
  double sumsq = 0.0;
  int64_t bad = 0, good = 0;
#if defined(MERSDK_WITH_OPENMP)
#pragma omp parallel for reduction(max : peak) reduction(+ : sumsq, bad, good) if (n > (1 << 20))
#endif
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isfinite(v)) {
      const float a = std::fabs(v);
      peak = a > peak ? a : peak;
      sumsq += static_cast<double>(v) * v;
      ++good;
    } else {
      ++bad;
    }
  }
  AudioStats s;
  s.peak = peak;
  s.rms = good ? std::sqrt(sumsq / static_cast<double>(good)) : 0.0;
  s.n_nonfinite = bad;
  return s;
}

}  // namespace mersdk
