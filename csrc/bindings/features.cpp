// Bindings for the feature front end: the fused batch log-mel (ops/log_mel.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "bindings/array_view.h"
#include "ops/log_mel.h"
#ifdef MERSDK_WITH_CUDA
#include "core/cuda_runtime_utils.h"
#endif

namespace py = pybind11;

namespace mersdk::bindings {

namespace {

py::object log_mel_binding(py::handle signal_obj, py::handle lengths_obj, py::handle window_obj,
                           py::handle filterbank_obj, int64_t hop, double log_floor, const std::string& compression,
                           double log_gain, py::object out_obj, uintptr_t stream) {
  ArrayView signal = view_array(signal_obj, "log_mel: signal", stream);
  require_dtype(signal, {DType::kFloat32});
  require_rank(signal, 2);
  require_contiguous(signal);
  ArrayView lengths = view_array(lengths_obj, "log_mel: lengths");
  require_cpu(lengths, "it sets the output shape, so it must be readable without a device sync");
  require_dtype(lengths, {DType::kInt64});
  require_rank(lengths, 1);
  require_contiguous(lengths);
  require_dim(lengths, 0, signal.shape[0], "the batch size of signal");
  ArrayView window = view_array(window_obj, "log_mel: window");
  require_cpu(window, "pass mersdk.features.hann_window(n_fft)");
  require_dtype(window, {DType::kFloat32});
  require_rank(window, 1);
  require_contiguous(window);
  ArrayView fb = view_array(filterbank_obj, "log_mel: filterbank");
  require_cpu(fb, "pass mersdk.features.mel_filterbank(...)");
  require_dtype(fb, {DType::kFloat32});
  require_rank(fb, 2);
  require_contiguous(fb);

  LogMelShape s;
  s.batch = signal.shape[0];
  s.n_samples = signal.shape[1];
  s.n_fft = window.shape[0];
  s.hop = hop;
  s.n_mels = fb.shape[0];
  s.log_floor = static_cast<float>(log_floor);
  s.log_gain = static_cast<float>(log_gain);
  if (compression == "log")
    s.compression = Compression::kLog;
  else if (compression == "log10_1p")
    s.compression = Compression::kLog10Plus1;
  else
    throw py::value_error("log_mel: compression must be 'log' or 'log10_1p', got '" + compression + "'");
  if (s.batch < 1) throw py::value_error("log_mel: the batch is empty");
  if (s.n_fft < 2) throw py::value_error("log_mel: the window must have at least 2 samples (it sets n_fft)");
  if (hop < 1) throw py::value_error("log_mel: hop must be >= 1, got " + std::to_string(hop));
  if (!(log_floor > 0.0 && std::isfinite(log_floor)))
    throw py::value_error("log_mel: log_floor must be finite and > 0");
  if (!(log_gain > 0.0 && std::isfinite(static_cast<float>(log_gain))))
    throw py::value_error("log_mel: log_gain must be finite (in float32) and > 0");
  require_dim(fb, 1, s.n_bins(), "n_fft//2 + 1");
  const auto* len = static_cast<const int64_t*>(lengths.data);
  int64_t max_len = 0;
  for (int64_t b = 0; b < s.batch; ++b) {
    if (len[b] < 0 || len[b] > s.n_samples)
      throw py::value_error("log_mel: lengths[" + std::to_string(b) + "] = " + std::to_string(len[b]) +
                            " is outside [0, " + std::to_string(s.n_samples) + "]");
    max_len = std::max(max_len, len[b]);
  }
  s.n_frames = 1 + max_len / hop;

  DType out_dtype = DType::kFloat32;
  void* out_ptr = nullptr;
  if (out_obj.is_none()) {
    if (signal.device != Device::kCPU)
      throw py::value_error("log_mel: CUDA input needs a preallocated `out` on the same device");
    out_obj = py::array_t<float>({s.batch, s.n_mels, s.n_frames});
    out_ptr = py::cast<py::array>(out_obj).mutable_data();
  } else {
    ArrayView out = view_array(out_obj, "log_mel: out", stream);
    require_same_device(signal, out);
    if (out.device == Device::kCPU)
      require_dtype(out, {DType::kFloat32});
    else
      require_dtype(out, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
    require_rank(out, 3);
    require_dim(out, 0, s.batch, "the batch size");
    require_dim(out, 1, s.n_mels, "n_mels");
    require_dim(out, 2, s.n_frames, "1 + max(lengths)//hop");
    require_contiguous(out);
    require_writable(out);
    out_dtype = out.dtype;
    out_ptr = out.data;
  }

  LogMelHostConstants c;
  c.lengths = len;
  c.window = static_cast<const float*>(window.data);
  c.filterbank = static_cast<const float*>(fb.data);
  {
    py::gil_scoped_release release;
#ifdef MERSDK_WITH_CUDA
    std::optional<cuda::DeviceGuard> guard;
    if (signal.device == Device::kCUDA && signal.device_id >= 0) guard.emplace(signal.device_id);
#endif
    log_mel(signal.device, static_cast<const float*>(signal.data), c, s, out_ptr, out_dtype,
            reinterpret_cast<void*>(stream));
  }
  return out_obj;
}

}  // namespace

void register_features(py::module_& m) {
  m.def("log_mel", &log_mel_binding, py::arg("signal"), py::arg("lengths"), py::arg("window"), py::arg("filterbank"),
        py::kw_only(), py::arg("hop"), py::arg("log_floor"), py::arg("compression") = "log", py::arg("log_gain") = 1.0,
        py::arg("out") = py::none(), py::arg("stream") = 0,
        R"doc(log_mel(signal, lengths, window, filterbank, *, hop, log_floor, compression="log", log_gain=1.0,
        out=None, stream=0) -> out

Fused batch log-mel with the definition of mersdk.features.log_mel.
signal: float32 (B, N), C-contiguous, on the CPU (NumPy / DLPack) or CUDA (DLPack /
  __cuda_array_interface__); samples at or beyond lengths[b] are read as zero.
lengths: int64 (B,) host array, each in [0, N].
window: float32 (n_fft,) host; filterbank: float32 (n_mels, n_fft//2+1) host.
compression of the mel power P: "log" = ln(max(P, log_floor)); "log10_1p" = log10(1 + log_gain*P).
out: (B, n_mels, T), T = 1 + max(lengths)//hop; float32 on CPU (allocated when None),
  float32/float16/bfloat16 on CUDA (required). Frames t >= 1 + lengths[b]//hop are 0.
stream: CUDA stream handle (0 = legacy default); the kernel is queued, not waited for.
CUDA needs n_fft a power of two in [16, 4096].)doc");
}

}  // namespace mersdk::bindings
