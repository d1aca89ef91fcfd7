// CPU implementation of log_mel: frames are processed VLEN at a time (one frame per SIMD lane) by
// pocketfft's real FFT, so the FFT, the power and the mel projection are all vectorised across
// frames; OpenMP shares the (row, frame group) work items between threads.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/log_mel.h"

// the kernel parallelises over frames itself; pocketfft's own thread pool would only compete
#define POCKETFFT_NO_MULTITHREADING
#include "pocketfft_hdronly.h"

namespace mersdk {
namespace {

using pocketfft::detail::pocketfft_r;
using pocketfft::detail::VLEN;
using pocketfft::detail::vtype_t;

#ifndef POCKETFFT_NO_VECTORS
using Vec = vtype_t<float>;
constexpr int64_t kLanes = static_cast<int64_t>(VLEN<float>::val);
inline float& lane(Vec& v, int64_t j) { return reinterpret_cast<float*>(&v)[j]; }
#else
using Vec = float;
constexpr int64_t kLanes = 1;
inline float& lane(Vec& v, int64_t) { return v; }
#endif

}  // namespace

void log_mel_cpu(const float* signal, const LogMelHostConstants& c, const LogMelShape& s, float* out) {
  const int64_t n_fft = s.n_fft, hop = s.hop, n_bins = s.n_bins(), n_mels = s.n_mels, T = s.n_frames;
  const int64_t pad = n_fft / 2;
  const int64_t groups_per_row = (T + kLanes - 1) / kLanes;
  const int64_t n_items = s.batch * groups_per_row;
  if (n_items == 0) return;

  const pocketfft_r<float> plan(static_cast<size_t>(n_fft));
  const CompactFilterbank fb = compact_filterbank(c.filterbank, n_mels, n_bins);
  const float* window = c.window;
  const Compression mode = s.compression;
  const float log_floor = s.log_floor, log_gain = s.log_gain;

#if defined(MERSDK_WITH_OPENMP)
#pragma omp parallel
#endif
  {
    // per-thread scratch: the frames (later their power spectra) and the mel energies
    std::vector<Vec> frames(static_cast<size_t>(n_fft));
    std::vector<Vec> mel(static_cast<size_t>(n_mels));
#if defined(MERSDK_WITH_OPENMP)
#pragma omp for schedule(dynamic, 4)
#endif
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t b = item / groups_per_row;
      const int64_t t0 = (item % groups_per_row) * kLanes;
      const int64_t len = c.lengths[b];
      const int64_t valid_frames = 1 + len / hop;  // frames of this row; later ones are padding
      const int64_t n_here = std::min<int64_t>(kLanes, T - t0);
      float* out_row = out + b * n_mels * T;
      if (t0 >= valid_frames) {
        for (int64_t m = 0; m < n_mels; ++m) std::fill_n(out_row + m * T + t0, n_here, 0.0f);
        continue;
      }
      const float* x = signal + b * s.n_samples;

      // framing + window, lane j = frame t0 + j; samples outside [0, len) read as zero
      for (int64_t j = 0; j < kLanes; ++j) {
        const int64_t start = (t0 + j) * hop - pad;
        const int64_t i_lo = std::clamp<int64_t>(-start, 0, n_fft);
        const int64_t i_hi = std::clamp<int64_t>(len - start, i_lo, n_fft);
        for (int64_t i = 0; i < i_lo; ++i) lane(frames[i], j) = 0.0f;
        for (int64_t i = i_lo; i < i_hi; ++i) lane(frames[i], j) = x[start + i] * window[i];
        for (int64_t i = i_hi; i < n_fft; ++i) lane(frames[i], j) = 0.0f;
      }

      // halfcomplex result: [r0, r1, i1, r2, i2, ..., (r_{n/2} if n even)]
      plan.exec(frames.data(), 1.0f, /*r2hc=*/true);
      Vec* power = frames.data();  // in place: power[k] only reads entries >= k
      power[0] = frames[0] * frames[0];
      for (int64_t k = 1; k < (n_fft + 1) / 2; ++k) {
        const Vec re = frames[2 * k - 1], im = frames[2 * k];
        power[k] = re * re + im * im;
      }
      if (n_fft % 2 == 0) power[n_fft / 2] = frames[n_fft - 1] * frames[n_fft - 1];

      for (int64_t m = 0; m < n_mels; ++m) {
        const float* w = fb.weights.data() + fb.offset[m];
        const Vec* p = power + fb.first[m];
        const int64_t n_w = fb.offset[m + 1] - fb.offset[m];
        Vec acc{};
        for (int64_t i = 0; i < n_w; ++i) acc += p[i] * w[i];
        mel[m] = acc;
      }
      for (int64_t m = 0; m < n_mels; ++m) {
        float* o = out_row + m * T + t0;
        for (int64_t j = 0; j < n_here; ++j)
          o[j] = (t0 + j < valid_frames) ? compress_mel(lane(mel[m], j), mode, log_floor, log_gain) : 0.0f;
      }
    }
  }
}

}  // namespace mersdk
