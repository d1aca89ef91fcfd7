// view_array and the argument checks behind bindings/array_view.h. The DLPack structs are the
// stable C ABI of dlpack.h (v0.8 unversioned and v1.x versioned capsules), restated here so no
// framework header is needed.
#include "bindings/array_view.h"

#include <pybind11/numpy.h>

#include <sstream>

#ifdef MERSDK_WITH_CUDA
#include "core/cuda_runtime_utils.h"
#endif

namespace mersdk::bindings {
namespace {

struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor*);
};
struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned*);
  uint64_t flags;
  DLTensor dl_tensor;
};
constexpr int32_t kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13;
constexpr uint8_t kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4, kDLBool = 6;
constexpr uint64_t kDLFlagReadOnly = 1;

[[noreturn]] void type_error(const std::string& msg) { throw py::type_error(msg); }
[[noreturn]] void value_error(const std::string& msg) { throw py::value_error(msg); }

DType dtype_from_dlpack(const DLDataType& t, const std::string& name) {
  if (t.lanes == 1) {
    if (t.code == kDLFloat && t.bits == 32) return DType::kFloat32;
    if (t.code == kDLFloat && t.bits == 16) return DType::kFloat16;
    if (t.code == kDLFloat && t.bits == 64) return DType::kFloat64;
    if (t.code == kDLBfloat && t.bits == 16) return DType::kBFloat16;
    if (t.code == kDLInt && t.bits == 64) return DType::kInt64;
    if (t.code == kDLInt && t.bits == 32) return DType::kInt32;
    if (t.code == kDLUInt && t.bits == 8) return DType::kUInt8;
    if (t.code == kDLBool && t.bits == 8) return DType::kBool;
  }
  type_error(name + ": unsupported DLPack dtype (code " + std::to_string(t.code) + ", " + std::to_string(t.bits) +
             " bits, " + std::to_string(t.lanes) + " lanes)");
}

DType dtype_from_typestr(const std::string& s, const std::string& name) {
  // byte order '<' or '|' (native little endian) is all a GPU array can have here
  if (s.size() >= 3 && (s[0] == '<' || s[0] == '|' || s[0] == '=')) {
    const std::string t = s.substr(1);
    if (t == "f4") return DType::kFloat32;
    if (t == "f2") return DType::kFloat16;
    if (t == "f8") return DType::kFloat64;
    if (t == "i8") return DType::kInt64;
    if (t == "i4") return DType::kInt32;
    if (t == "u1") return DType::kUInt8;
    if (t == "b1") return DType::kBool;
  }
  type_error(name + ": unsupported __cuda_array_interface__ typestr '" + s + "'");
}

DType dtype_from_numpy(const py::dtype& dt, const std::string& name) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return DType::kFloat32;
  if (kind == 'f' && size == 2) return DType::kFloat16;
  if (kind == 'f' && size == 8) return DType::kFloat64;
  if (kind == 'i' && size == 8) return DType::kInt64;
  if (kind == 'i' && size == 4) return DType::kInt32;
  if (kind == 'u' && size == 1) return DType::kUInt8;
  if (kind == 'b' && size == 1) return DType::kBool;
  type_error(name + ": unsupported dtype " + std::string(py::str(dt)));
}

size_t itemsize(DType t) {
  switch (t) {
    case DType::kFloat64:
    case DType::kInt64: return 8;
    case DType::kFloat32:
    case DType::kInt32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16: return 2;
    default: return 1;
  }
}

void fill_from_dltensor(ArrayView& v, const DLTensor& t) {
  v.dtype = dtype_from_dlpack(t.dtype, v.name);
  v.data = static_cast<char*>(t.data) + t.byte_offset;
  v.shape.assign(t.shape, t.shape + t.ndim);
  if (t.strides) {
    v.strides.assign(t.strides, t.strides + t.ndim);
  } else {  // NULL strides: compact row-major
    v.strides.assign(t.ndim, 1);
    for (int i = t.ndim - 2; i >= 0; --i) v.strides[i] = v.strides[i + 1] * v.shape[i + 1];
  }
  switch (t.device.device_type) {
    case kDLCPU:
    case kDLCUDAHost:
      v.device = Device::kCPU;
      v.device_id = -1;
      break;
    case kDLCUDA:
    case kDLCUDAManaged:
      v.device = Device::kCUDA;
      v.device_id = t.device.device_id;
      break;
    default: value_error(v.name + ": unsupported DLPack device type " + std::to_string(t.device.device_type));
  }
}

ArrayView view_dlpack(py::handle obj, const std::string& name, uintptr_t stream) {
  ArrayView v;
  v.name = name;
  int32_t device_type = kDLCPU;
  if (py::hasattr(obj, "__dlpack_device__")) device_type = obj.attr("__dlpack_device__")()[py::int_(0)].cast<int32_t>();
  py::object capsule;
  if (device_type == kDLCUDA || device_type == kDLCUDAManaged) {
    // DLPack: 1 names the legacy default stream (0 is ambiguous and disallowed)
    capsule = obj.attr("__dlpack__")(py::arg("stream") = py::int_(stream == 0 ? 1 : stream));
  } else {
    capsule = obj.attr("__dlpack__")();
  }
  PyObject* cap = capsule.ptr();
  if (PyCapsule_IsValid(cap, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    fill_from_dltensor(v, m->dl_tensor);
  } else if (PyCapsule_IsValid(cap, "dltensor_versioned")) {
    auto* m = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(cap, "dltensor_versioned"));
    fill_from_dltensor(v, m->dl_tensor);
    v.readonly = (m->flags & kDLFlagReadOnly) != 0;
  } else {
    type_error(name + ": __dlpack__() did not return a DLPack capsule");
  }
  // the capsule stays unconsumed: when `owner` is released its destructor calls the deleter
  v.owner = capsule;
  return v;
}

ArrayView view_cuda_array_interface(py::handle obj, const std::string& name, uintptr_t stream) {
  ArrayView v;
  v.name = name;
  py::dict cai = obj.attr("__cuda_array_interface__");
  if (cai.contains("mask") && !cai["mask"].is_none()) value_error(name + ": masked arrays are not supported");
  v.dtype = dtype_from_typestr(cai["typestr"].cast<std::string>(), name);
  py::tuple data = cai["data"];
  v.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  v.readonly = data[1].cast<bool>();
  for (auto d : cai["shape"]) v.shape.push_back(d.cast<int64_t>());
  const int64_t isz = static_cast<int64_t>(itemsize(v.dtype));
  v.strides.assign(v.shape.size(), 1);
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    size_t i = 0;
    for (auto s : cai["strides"]) {
      const int64_t bytes = s.cast<int64_t>();
      if (bytes % isz) value_error(name + ": strides are not a multiple of the item size");
      v.strides[i++] = bytes / isz;
    }
  } else {
    for (int i = static_cast<int>(v.shape.size()) - 2; i >= 0; --i) v.strides[i] = v.strides[i + 1] * v.shape[i + 1];
  }
  v.device = Device::kCUDA;
  v.owner = py::reinterpret_borrow<py::object>(obj);
#ifdef MERSDK_WITH_CUDA
  v.device_id = v.numel() > 0 ? cuda::pointer_device(v.data) : -1;
  if (v.numel() > 0 && v.device_id < 0) value_error(name + ": __cuda_array_interface__ data is not device memory");
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    // 1 and 2 (legacy / per-thread default stream) are also the runtime's own handles for them
    const uintptr_t producer = cai["stream"].cast<uintptr_t>();
    cuda::stream_wait(reinterpret_cast<void*>(stream), reinterpret_cast<void*>(producer));
  }
#else
  (void)stream;
#endif
  return v;
}

}  // namespace

int64_t ArrayView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool ArrayView::c_contiguous() const {
  int64_t expected = 1;
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return numel() == 0;
    expected *= shape[i];
  }
  return true;
}

std::string ArrayView::shape_str() const {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << (shape.size() == 1 ? ",)" : ")");
  return s.str();
}

ArrayView view_array(py::handle obj, const std::string& name, uintptr_t stream) {
  if (py::isinstance<py::array>(obj)) {
    auto arr = py::reinterpret_borrow<py::array>(obj);
    ArrayView v;
    v.name = name;
    v.dtype = dtype_from_numpy(arr.dtype(), name);
    v.data = const_cast<void*>(arr.data());
    v.readonly = !arr.writeable();
    const int64_t isz = static_cast<int64_t>(arr.itemsize());
    for (py::ssize_t i = 0; i < arr.ndim(); ++i) {
      v.shape.push_back(arr.shape(i));
      if (arr.strides(i) % isz) value_error(name + ": strides are not a multiple of the item size");
      v.strides.push_back(arr.strides(i) / isz);
    }
    v.owner = arr;
    return v;
  }
  if (py::hasattr(obj, "__dlpack__")) return view_dlpack(obj, name, stream);
  if (py::hasattr(obj, "__cuda_array_interface__")) return view_cuda_array_interface(obj, name, stream);
  type_error(name + ": expected a NumPy array or an array exporting __dlpack__ / __cuda_array_interface__, got " +
             std::string(py::str(py::type::of(obj).attr("__name__"))));
}

void require_dtype(const ArrayView& a, std::initializer_list<DType> allowed) {
  for (DType t : allowed)
    if (a.dtype == t) return;
  std::string names;
  for (DType t : allowed) names += (names.empty() ? "" : " or ") + std::string(dtype_name(t));
  type_error(a.name + ": expected dtype " + names + ", got " + dtype_name(a.dtype));
}

void require_rank(const ArrayView& a, size_t rank) {
  if (a.shape.size() != rank)
    value_error(a.name + ": expected " + std::to_string(rank) + " dimensions, got shape " + a.shape_str());
}

void require_dim(const ArrayView& a, size_t dim, int64_t size, const char* what) {
  if (a.shape[dim] != size)
    value_error(a.name + ": dimension " + std::to_string(dim) + " must be " + what + " = " + std::to_string(size) +
                ", got shape " + a.shape_str());
}

void require_contiguous(const ArrayView& a) {
  if (!a.c_contiguous()) value_error(a.name + ": must be C-contiguous (call .contiguous() / np.ascontiguousarray)");
}

void require_writable(const ArrayView& a) {
  if (a.readonly) value_error(a.name + ": must be writable");
}

void require_cpu(const ArrayView& a, const char* why) {
  if (a.device != Device::kCPU) value_error(a.name + ": must be a host (CPU) array: " + why);
}

void require_same_device(const ArrayView& a, const ArrayView& b) {
  if (a.device != b.device ||
      (a.device == Device::kCUDA && a.device_id >= 0 && b.device_id >= 0 && a.device_id != b.device_id))
    value_error(b.name + ": must be on the same device as " + a.name);
}

}  // namespace mersdk::bindings
