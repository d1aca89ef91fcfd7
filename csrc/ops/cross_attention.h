// cross_attention: fused multi-head attention with a key padding mask and an online softmax (the
// score matrix is never materialised). Oracle: mersdk.model.masked_attention.
//
//   q (B, H, Tq, D), k and v (B, H, Tk, D), key_mask (B, Tk) uint8/bool, nonzero = valid key
//   -> out (B, H, Tq, D) = softmax(q k^T * scale, valid keys only) v
// A row whose keys are all masked, and every row when Tk == 0, is ZERO (not NaN): the model then
// reduces to audio only. D is 32, 64 or 128. All arrays are C-contiguous.
//
// Why the FusionBlock gate is not fused here: the gate needs c = out_proj(concat over heads), a
// d_model x d_model GEMM across all heads, and sigmoid(Linear([h, c])), a reduction over d_model;
// this kernel owns one (batch, head) slice, so the epilogue would need a cross-block reduction and
// the projection weights. The gate stays a separate (cheap, elementwise + GEMV) PyTorch step.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/types.h"

namespace mersdk {

struct AttentionShape {
  int64_t batch = 0, heads = 0, q_len = 0, k_len = 0, head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
};

inline bool attention_head_dim_supported(int64_t d) { return d == 32 || d == 64 || d == 128; }

// CPU: fp32 only; OpenMP over (batch, head, query row); key_mask may be null when k_len == 0.
void cross_attention_cpu(const float* q, const float* k, const float* v, const uint8_t* key_mask,
                         const AttentionShape& s, float* out);

#ifdef MERSDK_WITH_CUDA
// CUDA: fp32, fp16 or bf16 (q, k, v and out share `dtype`), fp32 accumulation. Device pointers,
// stream-ordered on `stream` (a cudaStream_t as void*), no synchronisation.
void cross_attention_cuda(const void* q, const void* k, const void* v, const uint8_t* key_mask, const AttentionShape& s,
                          DType dtype, void* out, void* stream);
#endif

// The one dispatch point: the CUDA branch exists only in CUDA builds.
inline void cross_attention(Device device, const void* q, const void* k, const void* v, const uint8_t* key_mask,
                            const AttentionShape& s, DType dtype, void* out, void* stream) {
  if (!attention_head_dim_supported(s.head_dim))
    throw std::invalid_argument("cross_attention: head dim must be 32, 64 or 128, got " + std::to_string(s.head_dim));
  if (device == Device::kCPU) {
    if (dtype != DType::kFloat32)
      throw std::invalid_argument(std::string("cross_attention: the CPU kernel takes float32, got ") +
                                  dtype_name(dtype));
    cross_attention_cpu(static_cast<const float*>(q), static_cast<const float*>(k), static_cast<const float*>(v),
                        key_mask, s, static_cast<float*>(out));
    return;
  }
#ifdef MERSDK_WITH_CUDA
  cross_attention_cuda(q, k, v, key_mask, s, dtype, out, stream);
#else
  (void)stream;
  throw std::runtime_error("cross_attention: this mersdk._C was built without CUDA");
#endif
}

}  // namespace mersdk
