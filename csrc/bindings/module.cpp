// The module entry: build information, then each area's register_* function.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace mersdk::bindings {
void register_features(py::module_& m);
void register_attention(py::module_& m);
}  // namespace mersdk::bindings

PYBIND11_MODULE(_C, m) {
  m.doc() = "mersdk compiled core (private: use the mersdk package API)";
  m.def(
      "build_info",
      [] {
        py::dict d;
        d["version"] = MERSDK_VERSION;
#ifdef MERSDK_WITH_CUDA
        d["cuda"] = true;
#else
        d["cuda"] = false;
#endif
#ifdef MERSDK_WITH_OPENMP
        d["openmp"] = true;
#else
        d["openmp"] = false;
#endif
        d["compiler"] = __VERSION__;
        return d;
      },
      "Build facts: version, whether CUDA kernels and OpenMP were compiled in, compiler.");
  mersdk::bindings::register_features(m);
  mersdk::bindings::register_attention(m);
}
