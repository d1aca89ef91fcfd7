// CUDA runtime helpers behind core/cuda_runtime_utils.h.
#include "core/cuda_runtime_utils.h"

#include "core/cuda_common.cuh"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mersdk::cuda {

int pointer_device(const void* ptr) {
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, ptr);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are not blamed for it
    throw std::runtime_error(std::string("CUDA runtime error while inspecting an array pointer: ") +
                             cudaGetErrorString(e));
  }
  if (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) return attr.device;
  return -1;
}

void stream_wait(void* consumer, void* producer) {
  if (consumer == producer) return;
  cudaEvent_t event;
  cudaError_t e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(event, static_cast<cudaStream_t>(producer));
  if (e == cudaSuccess) e = cudaStreamWaitEvent(static_cast<cudaStream_t>(consumer), event, 0);
  cudaEventDestroy(event);  // safe while pending: resources go once the event completes
  check(e, "stream synchronisation failed");
}

DeviceGuard::DeviceGuard(int device) {
  cudaGetDevice(&previous_);
  if (previous_ != device) {
    check(cudaSetDevice(device), "cudaSetDevice failed");
  }
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  cudaGetDevice(&now);
  if (previous_ >= 0 && now != previous_) cudaSetDevice(previous_);
}

}  // namespace mersdk::cuda
