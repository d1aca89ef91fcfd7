// log_mel: fused batch log-mel spectrogram (framing, window, real FFT, power, mel projection, log)
// with the exact definition of mersdk/features.py (`log_mel`, `log_mel_batch`), which is its oracle.
// Compression of the mel power P: kLog = ln(max(P, log_floor)); kLog10Plus1 = log10(1 + log_gain*P)
// (FrontendConfig.compression "log" / "log10_1p").
//
//   signal (B, N) float32, row b valid for its first lengths[b] samples (the rest read as zero)
//   -> out (B, n_mels, T), T = 1 + max(lengths)//hop; frame t of row b is centred at t*hop with
//   n_fft//2 zeros of padding each side; frames t >= 1 + lengths[b]//hop are written as 0.
//
// The window (float32[n_fft]) and filterbank (float32[n_mels, n_fft//2+1]) come from the caller
// (mersdk.features), so there is one definition of them. They and `lengths` are HOST arrays for
// both devices: they are small, and host lengths let the binding validate them without a sync.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/types.h"

namespace mersdk {

enum class Compression { kLog, kLog10Plus1 };

struct LogMelShape {
  int64_t batch = 0;      // B
  int64_t n_samples = 0;  // N, row stride of `signal` in elements
  int64_t n_fft = 0;
  int64_t hop = 0;
  int64_t n_mels = 0;
  int64_t n_frames = 0;  // T
  Compression compression = Compression::kLog;
  float log_floor = 1e-5f;  // kLog only
  float log_gain = 1.0f;    // kLog10Plus1 only
  int64_t n_bins() const { return n_fft / 2 + 1; }
};

struct LogMelHostConstants {
  const int64_t* lengths = nullptr;   // (B,), each in [0, N]
  const float* window = nullptr;      // (n_fft,)
  const float* filterbank = nullptr;  // (n_mels, n_bins)
};

// CPU: pocketfft real FFT, OpenMP over frames. out is float32 (B, n_mels, T).
void log_mel_cpu(const float* signal, const LogMelHostConstants& c, const LogMelShape& s, float* out);

#ifdef MERSDK_WITH_CUDA
// CUDA: one block per group of frames (shared-memory radix-2 FFT). `signal` and `out` are device
// pointers; `out` has dtype out_dtype (float32, float16 or bfloat16). Stream-ordered on `stream`
// (a cudaStream_t as void*); does not synchronise. n_fft must be a power of two in [16, 4096].
void log_mel_cuda(const float* signal, const LogMelHostConstants& c, const LogMelShape& s, void* out, DType out_dtype,
                  void* stream);
#endif

// The one dispatch point: the CUDA branch exists only in CUDA builds.
inline void log_mel(Device device, const float* signal, const LogMelHostConstants& c, const LogMelShape& s, void* out,
                    DType out_dtype, void* stream) {
  if (device == Device::kCPU) {
    if (out_dtype != DType::kFloat32) throw std::invalid_argument("log_mel: the CPU kernel writes float32 only");
    log_mel_cpu(signal, c, s, static_cast<float*>(out));
    return;
  }
#ifdef MERSDK_WITH_CUDA
  log_mel_cuda(signal, c, s, out, out_dtype, stream);
#else
  (void)stream;
  throw std::runtime_error("log_mel: this mersdk._C was built without CUDA");
#endif
}

// The compression, one definition for both implementations (the float32 arithmetic of
// features.compress: 1 + gain*P is rounded to float32 before the log, as NumPy does).
#if defined(__CUDACC__)
#define MERSDK_HOST_DEVICE __host__ __device__
#else
#define MERSDK_HOST_DEVICE
#endif
MERSDK_HOST_DEVICE inline float compress_mel(float power, Compression mode, float log_floor, float log_gain) {
  if (mode == Compression::kLog10Plus1) return log10f(1.0f + log_gain * power);
  return logf(power > log_floor ? power : log_floor);
}

// Nonzero band of each filterbank row, so the projection skips the (mostly zero) triangles.
// Shared by both implementations; weights[offset[m] + i] = filterbank[m, first[m] + i].
struct CompactFilterbank {
  std::vector<int32_t> first, offset;  // offset has n_mels + 1 entries
  std::vector<float> weights;
};

inline CompactFilterbank compact_filterbank(const float* fb, int64_t n_mels, int64_t n_bins) {
  CompactFilterbank c;
  c.first.resize(n_mels);
  c.offset.resize(n_mels + 1);
  c.offset[0] = 0;
  for (int64_t m = 0; m < n_mels; ++m) {
    const float* row = fb + m * n_bins;
    int64_t lo = 0, hi = n_bins;
    while (lo < n_bins && row[lo] == 0.0f) ++lo;
    while (hi > lo && row[hi - 1] == 0.0f) --hi;
    c.first[m] = static_cast<int32_t>(lo);
    c.weights.insert(c.weights.end(), row + lo, row + hi);
    c.offset[m + 1] = static_cast<int32_t>(c.weights.size());
  }
  return c;
}

}  // namespace mersdk
