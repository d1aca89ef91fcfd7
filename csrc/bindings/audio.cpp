// Bindings for audio utilities. Inputs are checked here; kernels assume valid, contiguous data.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "ops/audio_stats.h"

namespace py = pybind11;

namespace mersdk::bindings {

void register_audio(py::module_& m) {
  m.def(
      "audio_stats",
      [](py::array x) {
        if (!py::isinstance<py::array_t<float>>(x) || x.dtype().kind() != 'f' || x.itemsize() != 4)
          throw py::type_error("audio_stats: expected a float32 array, got dtype " + std::string(py::str(x.dtype())));
        if (x.ndim() != 1) throw py::value_error("audio_stats: expected a 1-D array, got " + std::to_string(x.ndim()) + " dimensions");
        if (!(x.flags() & py::array::c_style)) throw py::value_error("audio_stats: array must be C-contiguous");
        const float* p = static_cast<const float*>(x.data());
        const int64_t n = x.shape(0);
        AudioStats s;
        {
          py::gil_scoped_release release;
          s = audio_stats_cpu(p, n);
        }
        return py::make_tuple(s.peak, s.rms, s.n_nonfinite);
      },
      py::arg("x"),
      "audio_stats(x: float32[n]) -> (peak, rms, n_nonfinite). Peak and RMS over finite samples.");
}

}  // namespace mersdk::bindings
