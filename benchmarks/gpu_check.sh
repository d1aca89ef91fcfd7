#!/usr/bin/env bash
# Every check owed on a GPU, in one call (issue 12, item 6): build the extension from this working tree
# with CUDA, the CUDA kernel tests, compute-sanitizer memcheck + racecheck on a reduced case set, the
# cuda backend's parity with torch, the kernel benchmarks, an ONNX Runtime CUDA / TensorRT execution
# provider run (parity with the CPU provider, latency) where present, batch-1 latency and throughput.
# Logs and JSON go to the folder given (default: $OUT, else ./gpu_check_out); summary.json says what ran,
# passed, failed or was skipped and why. Total under 9 minutes: each step has a time limit, and a step
# that would not fit in what is left is skipped (and said so).
#
#   benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]
#
# --dry-run (CPU, run by CI: tests/test_gpu_check.py): builds and runs nothing heavy; checks that every
# test selection still collects tests, every script still parses its arguments and the embedded Python
# compiles, so the script cannot rot between GPU loans.
# Environment: PYTHON (default python3), MERSDK_GPU_CHECK_BUDGET_S (default 530),
# MERSDK_CUDA_ARCHITECTURES (default: the GPU's own compute capability, else 80;86;89;90).
# Build time measured on the 2-core development CPU (no GPU, -j2, shared with other jobs): 105 s for
# all 4 architectures at load ~5; 178 s for sm_90 alone at load ~15. Here: the GPU's architecture only,
# all cores.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
OUT_DIR=${1:-${OUT:-$ROOT/gpu_check_out}}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
PY=${PYTHON:-python3}
BUDGET_S=${MERSDK_GPU_CHECK_BUDGET_S:-530}
START=$(date +%s)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
STEPS_FILE="$OUT_DIR/steps.jsonl"
: > "$STEPS_FILE"

# the reduced case sets (pytest -k expressions); dry-run checks that each still selects tests
KERNEL_TESTS="tests/test_kernels.py tests/test_integration_kernels.py"
KERNEL_SELECT="cuda"
SANITIZER_SELECT="cuda and (ragged_batch or peaked_softmax or all_keys_masked or ignores_samples)"

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET_S - $(elapsed) )); }

record() {  # record NAME STATUS SECONDS DETAIL
  "$PY" - "$1" "$2" "$3" "$4" >> "$STEPS_FILE" <<'PY'
import json, sys
print(json.dumps({"step": sys.argv[1], "status": sys.argv[2], "seconds": int(sys.argv[3]), "detail": sys.argv[4]}))
PY
  printf '%-22s %-8s %4ss  %s\n' "$1" "$2" "$3" "$4"
}

# run NAME LIMIT_S COMMAND...: runs with a time limit (or skips it when it cannot fit), log in OUT_DIR
run_step() {
  local name=$1 limit=$2
  shift 2
  local remaining
  remaining=$(left)
  if (( remaining < 20 )); then
    record "$name" skipped 0 "no time left in the ${BUDGET_S} s budget"
    return 1
  fi
  (( limit > remaining )) && limit=$remaining
  local t0=$(date +%s) rc
  timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if (( rc == 0 )); then
    record "$name" passed "$dt" "log: $name.log"
  elif (( rc == 124 || rc == 137 )); then
    record "$name" timeout "$dt" "stopped after ${limit} s; log: $name.log"
  else
    record "$name" failed "$dt" "exit $rc; log: $name.log (tail: $(tail -n 3 "$OUT_DIR/$name.log" | tr '\n' ' ' | cut -c1-300))"
  fi
  return $rc
}

skip() { record "$1" skipped 0 "$2"; }

have() { command -v "$1" > /dev/null 2>&1; }

# --------------------------------------------------------------------------------------------------
# what is here

py_has() { "$PY" -c "import $1" > /dev/null 2>&1; }
TORCH_CUDA=0
if py_has torch && "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  TORCH_CUDA=1
fi
ARCH=${MERSDK_CUDA_ARCHITECTURES:-}
if [[ -z "$ARCH" ]] && have nvidia-smi; then
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
fi
ARCH=${ARCH:-80;86;89;90}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "mode: $([[ $DRY == 1 ]] && echo dry-run || echo gpu)"
  echo "python: $("$PY" --version 2>&1)"
  echo "torch cuda usable: $TORCH_CUDA"
  echo "nvcc: $(have nvcc && nvcc --version | tail -n 1 || echo absent)"
  echo "compute-sanitizer: $(have compute-sanitizer && echo present || echo absent)"
  echo "cuda architectures: $ARCH"
  have nvidia-smi && nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
  "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" 2>&1 || true
} > "$OUT_DIR/environment.txt" 2>&1
cat "$OUT_DIR/environment.txt"

# the ONNX Runtime GPU execution-provider check, as a Python program (compiled in --dry-run)
ORT_CHECK=$(cat <<'PY'
"""ONNX Runtime CUDA / TensorRT execution providers on the bundled model's ONNX export: parity with
the CPU provider on the same inputs, batch-1 latency and batch-16 throughput. Writes ort_gpu.json."""
import json, os, shutil, sys, tempfile, time
import numpy as np
import onnxruntime as ort
from mersdk import ops
from mersdk.backends.onnx_backend import OnnxBackend
from mersdk.export import MODEL_INPUTS
from mersdk.checkpoint import DEFAULT_MODEL_DIR, read_checkpoint
from mersdk.export.onnx_export import export_onnx

out_dir = sys.argv[1]
wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in ort.get_available_providers()]
report = {"available_providers": ort.get_available_providers(), "runs": {}}
if not wanted:
    report["skipped"] = "this onnxruntime has neither the CUDA nor the TensorRT execution provider"
else:
    ckpt = tempfile.mkdtemp(prefix="mersdk_ckpt_")
    for name in os.listdir(DEFAULT_MODEL_DIR):
        if os.path.isfile(os.path.join(DEFAULT_MODEL_DIR, name)):
            shutil.copy2(os.path.join(DEFAULT_MODEL_DIR, name), ckpt)
    export_onnx(ckpt, None)
    cpu = OnnxBackend(read_checkpoint(ckpt))
    cfg = cpu.config
    rng = np.random.default_rng(0)

    def feeds(batch):
        audio = (0.1 * rng.standard_normal((batch, int(cfg.window_s * cfg.frontend.sample_rate)))).astype(np.float32)
        mel, lengths = ops.log_mel_batch_fast(audio, cfg.frontend)
        emb = rng.standard_normal((batch, 40, cfg.text_encoder.hidden_size)).astype(np.float32)
        return dict(zip(MODEL_INPUTS, (mel, lengths.astype(np.int64), emb, np.ones((batch, 40), bool))))

    for provider in wanted:
        providers = [provider, "CPUExecutionProvider"]
        if provider == "TensorrtExecutionProvider":
            cache = os.path.join(out_dir, "trt_cache")
            providers[0] = (provider, {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache})
        t0 = time.perf_counter()
        sess = ort.InferenceSession(str(cpu.export.model_path), providers=providers)
        setup_s = time.perf_counter() - t0
        f1, f16 = feeds(1), feeds(16)
        ref = cpu.session.run(cpu.outputs, f1)
        got = sess.run(cpu.outputs, f1)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, got))
        for _ in range(3):
            sess.run(cpu.outputs, f1)
        lat = []
        for _ in range(30):
            t0 = time.perf_counter(); sess.run(cpu.outputs, f1); lat.append(time.perf_counter() - t0)
        sess.run(cpu.outputs, f16)
        t0 = time.perf_counter()
        for _ in range(5):
            sess.run(cpu.outputs, f16)
        thr = 5 * 16 / (time.perf_counter() - t0)
        report["runs"][provider] = {"providers_used": sess.get_providers(), "session_setup_s": setup_s,
                                    "max_abs_diff_vs_cpu_provider": diff, "parity_ok": diff < 1e-2,
                                    "batch1_latency_ms_median": 1e3 * float(np.median(lat)),
                                    "batch1_latency_ms_p95": 1e3 * float(np.percentile(lat, 95)),
                                    "batch16_windows_per_s": thr}
with open(os.path.join(out_dir, "ort_gpu.json"), "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2))
bad = [p for p, r in report["runs"].items() if not r["parity_ok"]]
sys.exit(1 if bad else 0)
PY
)

# --------------------------------------------------------------------------------------------------
if (( DRY )); then
  # every selection must still select tests; every script must still parse; the Python must compile
  run_step collect_kernel_tests 120 "$PY" -m pytest --collect-only -q -p no:cacheprovider $KERNEL_TESTS -k "$KERNEL_SELECT"
  n=$(grep -cE '::' "$OUT_DIR/collect_kernel_tests.log" || true)
  (( n > 0 )) && record kernel_test_count passed 0 "$n CUDA kernel tests selected" \
              || record kernel_test_count failed 0 "the CUDA test selection is empty"
  run_step collect_sanitizer_tests 120 "$PY" -m pytest --collect-only -q -p no:cacheprovider tests/test_kernels.py -k "$SANITIZER_SELECT"
  n=$(grep -cE '::' "$OUT_DIR/collect_sanitizer_tests.log" || true)
  (( n > 0 )) && record sanitizer_test_count passed 0 "$n tests in the sanitizer set" \
              || record sanitizer_test_count failed 0 "the sanitizer selection is empty"
  run_step parse_kernel_benchmark 60 "$PY" benchmarks/kernels.py --help
  run_step parse_bench 60 "$PY" -m mersdk bench --help
  run_step compile_ort_check 30 "$PY" -c "import sys; compile(sys.argv[1], 'ort_check', 'exec')" "$ORT_CHECK"
  if have cmake && have ninja && py_has pybind11; then
    run_step cmake_configure_cpu 120 cmake -S . -B "$OUT_DIR/build-dry" -G Ninja -DMERSDK_CUDA=OFF \
      -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" \
      -DSKBUILD_PROJECT_VERSION=0.0.0
    rm -rf "$OUT_DIR/build-dry"
  else
    skip cmake_configure_cpu "needs cmake, ninja and pybind11 in this Python (a pip-installed CI venv may lack them)"
  fi
  for s in build cuda_kernel_tests memcheck racecheck kernel_benchmarks ort_gpu_providers bench_gpu; do
    skip "$s" "dry run: planned, not run"
  done
else
  # 1. build from the working tree with CUDA (one architecture: the GPU's own)
  BUILD="$OUT_DIR/build"
  if ! have cmake || ! have ninja || ! py_has pybind11; then
    skip build "needs cmake, ninja and pybind11 (pip install cmake ninja pybind11)"; BUILT=0
  elif have nvcc; then
    run_step build 240 bash -c "cmake -S . -B '$BUILD' -G Ninja -DMERSDK_CUDA=ON -DMERSDK_CUDA_ARCHITECTURES='$ARCH' \
      -DPython_EXECUTABLE='$(command -v "$PY")' -Dpybind11_DIR=\$('$PY' -m pybind11 --cmakedir) \
      -DSKBUILD_PROJECT_VERSION=0.0.0 && cmake --build '$BUILD' -j$(nproc) && cp '$BUILD'/_C*.so mersdk/" \
      && BUILT=1 || BUILT=0
  else
    skip build "no nvcc on PATH: cannot build the CUDA extension"; BUILT=0
  fi
  rm -rf "$BUILD"
  CAN_RUN=$(( BUILT && TORCH_CUDA ))
  why="needs a CUDA build of mersdk._C (built: $BUILT) and torch with a usable GPU (usable: $TORCH_CUDA)"

  # 2. CUDA kernel tests + the cuda backend's parity with torch (test_cuda_backend_matches_cpu)
  if (( CAN_RUN )); then
    run_step cuda_kernel_tests 150 "$PY" -m pytest -q -p no:cacheprovider -rs $KERNEL_TESTS -k "$KERNEL_SELECT" \
      --junitxml="$OUT_DIR/cuda_kernel_tests.xml"
  else skip cuda_kernel_tests "$why"; fi

  # 3. compute-sanitizer on the reduced set (no caching allocator, so every allocation is checked)
  # only mersdk's kernels are instrumented where the sanitizer can filter (torch's own run at full speed)
  FILTER=()
  if have compute-sanitizer && compute-sanitizer --help 2>&1 | grep -q -- '--kernel-name'; then
    FILTER=(--kernel-name kns=mersdk)
  fi
  for tool in memcheck racecheck; do
    if (( CAN_RUN )) && have compute-sanitizer; then
      run_step "$tool" 100 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool "$tool" "${FILTER[@]}" \
        --error-exitcode 3 --target-processes all \
        "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels.py -k "$SANITIZER_SELECT"
    elif (( CAN_RUN )); then skip "$tool" "compute-sanitizer is not on PATH"
    else skip "$tool" "$why"; fi
  done

  # 4. kernel benchmarks against the PyTorch paths (targets in benchmarks/results/kernels_cpu.md)
  if (( CAN_RUN )); then
    run_step kernel_benchmarks 120 "$PY" benchmarks/kernels.py --device cuda --repeats 20 --budget 2 \
      --json "$OUT_DIR/kernels_cuda.json"
  else skip kernel_benchmarks "$why"; fi

  # 5. ONNX Runtime CUDA / TensorRT execution providers: parity with the CPU provider, latency
  ORT_GPU="import onnxruntime as o, sys; sys.exit(0 if {'CUDAExecutionProvider', 'TensorrtExecutionProvider'}
    & set(o.get_available_providers()) else 1)"
  if ! py_has onnx || ! py_has torch; then
    skip ort_gpu_providers "needs onnx and torch (for the export)"
  elif ! "$PY" -c "$ORT_GPU" 2> /dev/null; then
    skip ort_gpu_providers "this onnxruntime has neither the CUDA nor the TensorRT execution provider"
  else
    run_step ort_gpu_providers 150 "$PY" -c "$ORT_CHECK" "$OUT_DIR"
  fi

  # 6. batch-1 latency and throughput of every backend that runs here (cuda, tensorrt, torch, onnx)
  if (( TORCH_CUDA )); then
    run_step bench_gpu 150 "$PY" -m mersdk bench --repeats 20 --cold-runs 1 --max-batch 32 \
      --json "$OUT_DIR/bench_gpu.json" --md "$OUT_DIR/bench_gpu.md"
  else skip bench_gpu "no usable GPU for torch"; fi
fi

"$PY" - "$STEPS_FILE" "$OUT_DIR/summary.json" "$DRY" "$(elapsed)" "$BUDGET_S" <<'PY'
import json, sys
steps = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
summary = {"mode": "dry-run" if sys.argv[3] == "1" else "gpu", "elapsed_s": int(sys.argv[4]),
           "budget_s": int(sys.argv[5]), "steps": steps,
           "failed": [s["step"] for s in steps if s["status"] in ("failed", "timeout")],
           "skipped": {s["step"]: s["detail"] for s in steps if s["status"] == "skipped"}}
json.dump(summary, open(sys.argv[2], "w"), indent=2)
PY
echo "gpu_check: $(elapsed) s; summary: $OUT_DIR/summary.json"
if grep -qE '"status": "(failed|timeout)"' "$STEPS_FILE"; then exit 1; fi
exit 0
