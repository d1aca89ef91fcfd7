// Small CUDA runtime helpers with a CUDA-free interface, so the (host-compiled) bindings can check
// where a pointer lives and pick the right device without including cuda_runtime.h.
#pragma once
#ifdef MERSDK_WITH_CUDA
#include <string>

namespace mersdk::cuda {

// Device ordinal owning `ptr` when it is device (or managed) memory, else -1. Throws with the CUDA
// error text when the runtime itself fails (no driver, no device).
int pointer_device(const void* ptr);

// Makes `consumer` wait for the work already queued on `producer` (both cudaStream_t as void*);
// a no-op when they are the same stream.
void stream_wait(void* consumer, void* producer);

// Makes `device` current for the lifetime of the guard and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace mersdk::cuda
#endif
