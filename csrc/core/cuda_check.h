// The one CUDA error check of the .cu files: turns a failed runtime call into an exception naming
// the operation. CUDA-only (includes cuda_runtime.h): host-compiled bindings use
// core/cuda_runtime_utils.h instead.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mersdk::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

}  // namespace mersdk::cuda
