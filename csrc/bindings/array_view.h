// Array arguments of the bindings: one view type for NumPy arrays (CPU), objects exporting
// DLPack (`__dlpack__`, e.g. PyTorch CPU or CUDA tensors) and objects exposing
// `__cuda_array_interface__` (CuPy, Numba), without copies and without linking any framework.
// The checks every binding needs (dtype, rank/shape, contiguity, device) live here too, raising
// TypeError (wrong kind or dtype) or ValueError (wrong shape, layout or device).
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/types.h"

namespace mersdk::bindings {

namespace py = pybind11;

// hidden like pybind11's own types (its py::object member is), so no -Wattributes warning
#if defined(__GNUC__)
#define MERSDK_HIDDEN __attribute__((visibility("hidden")))
#else
#define MERSDK_HIDDEN
#endif

struct MERSDK_HIDDEN ArrayView {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // in elements
  Device device = Device::kCPU;
  int device_id = -1;  // CUDA ordinal; -1 on CPU (or an empty CUDA array)
  bool readonly = false;
  py::object owner;  // keeps the exporter (DLPack capsule, array) alive while in use
  std::string name;  // "log_mel: signal", for messages

  int64_t numel() const;
  bool c_contiguous() const;
  std::string shape_str() const;
};

// `stream` is the consumer's CUDA stream (0 = legacy default): a DLPack producer orders its
// pending work before it, as the DLPack protocol asks; a __cuda_array_interface__ producer stream
// is waited on likewise.
ArrayView view_array(py::handle obj, const std::string& name, uintptr_t stream = 0);

void require_dtype(const ArrayView& a, std::initializer_list<DType> allowed);
void require_rank(const ArrayView& a, size_t rank);
void require_dim(const ArrayView& a, size_t dim, int64_t size, const char* what);
void require_contiguous(const ArrayView& a);
void require_writable(const ArrayView& a);
void require_cpu(const ArrayView& a, const char* why);
void require_same_device(const ArrayView& a, const ArrayView& b);

}  // namespace mersdk::bindings
