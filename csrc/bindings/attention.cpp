// Bindings for attention kernels: the fused masked cross-attention (ops/cross_attention.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "bindings/array_view.h"
#include "ops/cross_attention.h"
#ifdef MERSDK_WITH_CUDA
#include "core/cuda_runtime_utils.h"
#endif

namespace py = pybind11;

namespace mersdk::bindings {

namespace {

py::object cross_attention_binding(py::handle q_obj, py::handle k_obj, py::handle v_obj, py::handle mask_obj,
                                   py::object out_obj, std::optional<double> scale, uintptr_t stream) {
  ArrayView q = view_array(q_obj, "cross_attention: q", stream);
  ArrayView k = view_array(k_obj, "cross_attention: k", stream);
  ArrayView v = view_array(v_obj, "cross_attention: v", stream);
  ArrayView mask = view_array(mask_obj, "cross_attention: key_mask", stream);
  if (q.device == Device::kCPU)
    require_dtype(q, {DType::kFloat32});
  else
    require_dtype(q, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  for (ArrayView* a : {&k, &v}) {
    require_same_device(q, *a);
    if (a->dtype != q.dtype)
      throw py::type_error(a->name + ": dtype " + dtype_name(a->dtype) + " differs from q's " + dtype_name(q.dtype));
  }
  require_same_device(q, mask);
  require_dtype(mask, {DType::kBool, DType::kUInt8});
  for (ArrayView* a : {&q, &k, &v}) require_rank(*a, 4);
  require_rank(mask, 2);

  AttentionShape s;
  s.batch = q.shape[0];
  s.heads = q.shape[1];
  s.q_len = q.shape[2];
  s.head_dim = q.shape[3];
  s.k_len = k.shape[2];
  if (!attention_head_dim_supported(s.head_dim))
    throw py::value_error("cross_attention: head dim must be 32, 64 or 128, got q shape " + q.shape_str());
  for (ArrayView* a : {&k, &v}) {
    require_dim(*a, 0, s.batch, "q's batch size");
    require_dim(*a, 1, s.heads, "q's head count");
    require_dim(*a, 3, s.head_dim, "q's head dim");
  }
  require_dim(v, 2, s.k_len, "k's length");
  require_dim(mask, 0, s.batch, "q's batch size");
  require_dim(mask, 1, s.k_len, "k's length");
  for (ArrayView* a : {&q, &k, &v, &mask}) require_contiguous(*a);
  s.scale = static_cast<float>(scale ? *scale : 1.0 / std::sqrt(static_cast<double>(s.head_dim)));

  void* out_ptr = nullptr;
  if (out_obj.is_none()) {
    if (q.device != Device::kCPU)
      throw py::value_error("cross_attention: CUDA input needs a preallocated `out` on the same device");
    out_obj = py::array_t<float>({s.batch, s.heads, s.q_len, s.head_dim});
    out_ptr = py::cast<py::array>(out_obj).mutable_data();
  } else {
    ArrayView out = view_array(out_obj, "cross_attention: out", stream);
    require_same_device(q, out);
    if (out.dtype != q.dtype)
      throw py::type_error("cross_attention: out: dtype " + std::string(dtype_name(out.dtype)) + " differs from q's " +
                           dtype_name(q.dtype));
    require_rank(out, 4);
    for (size_t d = 0; d < 4; ++d) require_dim(out, d, q.shape[d], "q's shape");
    require_contiguous(out);
    require_writable(out);
    out_ptr = out.data;
  }

  {
    py::gil_scoped_release release;
#ifdef MERSDK_WITH_CUDA
    std::optional<cuda::DeviceGuard> guard;
    if (q.device == Device::kCUDA && q.device_id >= 0) guard.emplace(q.device_id);
#endif
    cross_attention(q.device, q.data, k.data, v.data, static_cast<const uint8_t*>(mask.data), s, q.dtype, out_ptr,
                    reinterpret_cast<void*>(stream));
  }
  return out_obj;
}

}  // namespace

void register_attention(py::module_& m) {
  m.def("cross_attention", &cross_attention_binding, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("key_mask"),
        py::kw_only(), py::arg("out") = py::none(), py::arg("scale") = py::none(), py::arg("stream") = 0,
        R"doc(cross_attention(q, k, v, key_mask, *, out=None, scale=None, stream=0) -> out

Fused masked attention with an online softmax (oracle: mersdk.model.masked_attention).
q: (B, H, Tq, D); k, v: (B, H, Tk, D), Tk may be 0; key_mask: (B, Tk) bool/uint8, True = valid.
D in {32, 64, 128}; all C-contiguous and on one device. CPU: float32 (out allocated when None).
CUDA: float32/float16/bfloat16, `out` required (same dtype and shape as q).
Rows with no valid key are zeros. scale defaults to 1/sqrt(D). stream: CUDA stream handle.)doc");
}

}  // namespace mersdk::bindings
