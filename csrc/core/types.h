// Element types and devices shared by the op interfaces: plain enums, so op headers stay free of
// CUDA and Python types and can be included from any translation unit.
#pragma once
#include <cstdint>

namespace mersdk {

enum class Device { kCPU, kCUDA };

enum class DType { kFloat32, kFloat16, kBFloat16, kFloat64, kInt64, kInt32, kUInt8, kBool };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat64: return "float64";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

}  // namespace mersdk
