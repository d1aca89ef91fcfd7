"""Benchmark of the compiled kernels against the PyTorch paths they replace, in the same run.

* log-mel: mersdk.ops.log_mel_batch_fast vs torch.stft + mel matmul + log (30 s clips at 16 kHz).
* cross-attention: mersdk.ops.cross_attention vs F.scaled_dot_product_attention (with the zeroing of
  rows that have no key) at the model's shapes (H=4, D=64, Tq=93 audio tokens, Tk=256 lyric tokens
  with ragged valid lengths); and the whole gated step (attention + out-projection + gate + residual,
  FusionBlock's arithmetic) with either attention inside.

Each case: warm-up, then repeats timed with a device synchronisation; reports median and p95, the
ratio baseline/kernel (> 1: the kernel is faster), and achieved bandwidth (log-mel: signal read +
log-mel written) or FLOP/s (attention: 4*B*H*Tq*Tk*D). Prints a Markdown table, writes JSON with
the machine, the build and the command.

    python benchmarks/kernels.py --device cpu --json benchmarks/results/kernels_cpu.json
    python benchmarks/kernels.py --device cuda --json benchmarks/results/kernels_cuda.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from mersdk import _ext, ops
from mersdk.config import FrontendConfig
from mersdk.features import hann_window, mel_filterbank

CFG = FrontendConfig()
DEFAULT_BATCHES = {"cpu": [1, 4, 16, 64], "cuda": [1, 4, 16, 64, 128, 256]}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_pair(kernel, baseline, device: str, warmup: int, repeats: int, budget_s: float):
    """Times kernel and baseline alternately, so load from other processes hits both alike."""
    for _ in range(warmup):
        kernel()
        baseline()
    sync(device)
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < repeats and (len(times[0]) < 3 or time.perf_counter() - start < budget_s):
        for fn, out in ((kernel, times[0]), (baseline, times[1])):
            t0 = time.perf_counter()
            fn()
            sync(device)
            out.append(time.perf_counter() - t0)
    return times


def stats(times: list[float]) -> dict:
    a = np.array(times)
    # min: the least disturbed run on a shared machine; median/p95: what a caller sees under the same load
    return {
        "median_s": float(np.median(a)),
        "p95_s": float(np.percentile(a, 95)),
        "min_s": float(a.min()),
        "n": len(times),
    }


# --------------------------------------------------------------------------------------------------


def torch_log_mel(x: torch.Tensor, window: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """The PyTorch path: centred zero-padded STFT, power, mel matmul, log (full-length rows)."""
    spec = torch.stft(
        x, CFG.n_fft, CFG.hop_length, window=window, center=True, pad_mode="constant", return_complex=True
    )
    power = spec.real.square() + spec.imag.square()
    return torch.log(torch.clamp_min(fb @ power, CFG.log_floor))


def bench_log_mel(device: str, batches: list[int], args) -> list[dict]:
    rows = []
    n = 30 * CFG.sample_rate
    window = torch.from_numpy(hann_window(CFG.n_fft).copy()).to(device)
    fb = torch.from_numpy(mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, CFG.f_min, CFG.f_max).copy()).to(
        device
    )
    for B in batches:
        x = (0.1 * torch.randn(B, n, generator=torch.Generator().manual_seed(B))).to(device)
        lengths = np.full(B, n, np.int64)
        kernel = lambda: ops.log_mel_batch_fast(x, CFG, lengths)
        baseline = lambda: torch_log_mel(x, window, fb)
        # same numbers before timing anything
        got, _ = kernel()
        ref = baseline()
        max_diff = float((got.float() - ref).abs().max())
        t_k, t_b = map(stats, timed_pair(kernel, baseline, device, args.warmup, args.repeats, args.budget))
        T = got.shape[-1]
        bytes_moved = B * n * 4 + B * CFG.n_mels * T * 4
        rows.append(
            {
                "op": "log_mel",
                "device": device,
                "batch": B,
                "shape": f"({B}, {n}) -> ({B}, {CFG.n_mels}, {T})",
                "kernel": t_k,
                "baseline": t_b,
                "baseline_name": "torch.stft + mel matmul + log",
                "ratio": t_b["median_s"] / t_k["median_s"],
                "kernel_GBps": bytes_moved / t_k["median_s"] / 1e9,
                "kernel_audio_s_per_s": B * 30.0 / t_k["median_s"],
                "max_abs_diff_vs_baseline": max_diff,
            }
        )
        print(
            f"  log_mel B={B}: kernel {t_k['median_s'] * 1e3:.2f} ms, torch {t_b['median_s'] * 1e3:.2f} ms",
            file=sys.stderr,
        )
    return rows


# --------------------------------------------------------------------------------------------------


def gated_step(attention, a, h, q, k, v, key_mask, out_proj, gate):
    """FusionBlock's cross step after q/k/v: out-projection, gate over [h, c], residual."""
    B, H, Tq, D = q.shape
    y = attention(q, k, v, key_mask).transpose(1, 2).reshape(B, Tq, H * D)
    c = out_proj(y)
    has_keys = key_mask.any(dim=1, keepdim=True).to(a.dtype)
    g = torch.sigmoid(gate(torch.cat([h, c], dim=-1))).squeeze(-1) * has_keys
    return a + g.unsqueeze(-1) * c


@torch.inference_mode()
def bench_attention(device: str, batches: list[int], dtype: torch.dtype, args) -> list[dict]:
    rows = []
    H, D, Tq, Tk = 4, 64, 93, 256
    d = H * D
    out_proj = torch.nn.Linear(d, d).to(device, dtype)
    gate = torch.nn.Linear(2 * d, 1).to(device, dtype)
    for B in batches:
        g = torch.Generator().manual_seed(B)
        q, k, v = (torch.randn(B, H, T, D, generator=g).to(device, dtype) for T in (Tq, Tk, Tk))
        valid = torch.randint(16, Tk + 1, (B,), generator=g)
        key_mask = (torch.arange(Tk)[None, :] < valid[:, None]).to(device)
        a = torch.randn(B, Tq, d, generator=g).to(device, dtype)
        h = torch.randn(B, Tq, d, generator=g).to(device, dtype)
        kernel_attention = functools.partial(ops.cross_attention, impl="kernel")
        max_diff = float((kernel_attention(q, k, v, key_mask) - ops.sdpa_attention(q, k, v, key_mask)).abs().max())
        flops = 4.0 * B * H * Tq * Tk * D
        cases = [
            (
                "attention",
                lambda: kernel_attention(q, k, v, key_mask),
                lambda: ops.sdpa_attention(q, k, v, key_mask),
                "F.scaled_dot_product_attention",
            ),
            (
                "attention+gate",
                lambda: gated_step(kernel_attention, a, h, q, k, v, key_mask, out_proj, gate),
                lambda: gated_step(ops.sdpa_attention, a, h, q, k, v, key_mask, out_proj, gate),
                "SDPA + out-proj + gate",
            ),
        ]
        for name, kernel, baseline, baseline_name in cases:
            t_k, t_b = map(stats, timed_pair(kernel, baseline, device, args.warmup, args.repeats, args.budget))
            rows.append(
                {
                    "op": name,
                    "device": device,
                    "dtype": str(dtype).split(".")[-1],
                    "batch": B,
                    "shape": f"q ({B}, {H}, {Tq}, {D}), k/v ({B}, {H}, {Tk}, {D})",
                    "kernel": t_k,
                    "baseline": t_b,
                    "baseline_name": baseline_name,
                    "ratio": t_b["median_s"] / t_k["median_s"],
                    "kernel_GFLOPps": flops / t_k["median_s"] / 1e9,
                    "baseline_GFLOPps": flops / t_b["median_s"] / 1e9,
                    "max_abs_diff_vs_baseline": max_diff,
                }
            )
            print(
                f"  {name} {dtype} B={B}: kernel {t_k['median_s'] * 1e3:.3f} ms, "
                f"baseline {t_b['median_s'] * 1e3:.3f} ms",
                file=sys.stderr,
            )
    return rows


@torch.inference_mode()
def sweep_cpu_attention(args) -> list[dict]:
    """The measurements behind ops' CPU attention rule: compiled kernel vs SDPA vs the matmul
    reference (model.masked_attention) over batch x key length at the model's head shapes."""
    from mersdk.model import masked_attention

    rows = []
    H, Tq = 4, args.sweep_tq
    for D in args.sweep_head_dims:
        for Tk in args.sweep_tk:
            for B in args.sweep_batches:
                g = torch.Generator().manual_seed(B * 1000 + Tk)
                q, k, v = (torch.randn(B, H, T, D, generator=g) for T in (Tq, Tk, Tk))
                key_mask = torch.arange(Tk)[None, :] < torch.randint(1, Tk + 1, (B,), generator=g)[:, None]
                kernel = lambda: ops.cross_attention(q, k, v, key_mask, impl="kernel")
                sdpa = lambda: ops.sdpa_attention(q, k, v, key_mask)
                ref = lambda: masked_attention(q, k, v, key_mask)
                t_k, t_s = map(stats, timed_pair(kernel, sdpa, "cpu", args.warmup, args.repeats, args.budget))
                t_r = stats(timed_pair(ref, ref, "cpu", 1, max(3, args.repeats // 4), args.budget / 4)[0])
                rows.append(
                    {
                        "op": "attention_sweep",
                        "device": "cpu",
                        "threads": torch.get_num_threads(),
                        "batch": B,
                        "heads": H,
                        "q_len": Tq,
                        "k_len": Tk,
                        "head_dim": D,
                        "kernel": t_k,
                        "sdpa": t_s,
                        "reference": t_r,
                        "sdpa_over_kernel": t_s["median_s"] / t_k["median_s"],
                        "sdpa_over_kernel_min": t_s["min_s"] / t_k["min_s"],
                        "reference_over_kernel": t_r["median_s"] / t_k["median_s"],
                    }
                )
                print(
                    f"  sweep D={D} Tk={Tk} B={B}: kernel {t_k['median_s'] * 1e3:.3f} ms, "
                    f"sdpa {t_s['median_s'] * 1e3:.3f} ms, reference {t_r['median_s'] * 1e3:.3f} ms",
                    file=sys.stderr,
                )
    return rows


def sweep_markdown(rows: list[dict]) -> str:
    lines = [
        "| threads | D | Tk | batch | kernel min / median (ms) | SDPA min / median (ms) | reference median (ms) "
        "| SDPA / kernel (min, median) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        k, s = r["kernel"], r["sdpa"]
        lines.append(
            f"| {r['threads']} | {r['head_dim']} | {r['k_len']} | {r['batch']} | "
            f"{k['min_s'] * 1e3:.3f} / {k['median_s'] * 1e3:.3f} | {s['min_s'] * 1e3:.3f} / "
            f"{s['median_s'] * 1e3:.3f} | {r['reference']['median_s'] * 1e3:.3f} | "
            f"{r['sdpa_over_kernel_min']:.2f}x, {r['sdpa_over_kernel']:.2f}x |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------


def machine_info(device: str) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mersdk_build": _ext.build_info(),
        # other processes compete for the cores on a shared machine: record how busy it was
        "load_average_1_5_15": list(os.getloadavg()),
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": p.name,
            "memory_GiB": round(p.total_memory / 2**30, 1),
            "capability": f"{p.major}.{p.minor}",
            "cuda": torch.version.cuda,
        }
    return info


def markdown(rows: list[dict]) -> str:
    lines = [
        "| op | dtype | batch | kernel median / p95 (ms) | baseline median / p95 (ms) | baseline | speed-up "
        "| kernel throughput |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        if r["op"] == "log_mel":
            thr = f"{r['kernel_GBps']:.2f} GB/s, {r['kernel_audio_s_per_s']:.0f} s audio/s"
        else:
            thr = f"{r['kernel_GFLOPps']:.1f} GFLOP/s (baseline {r['baseline_GFLOPps']:.1f})"
        lines.append(
            f"| {r['op']} | {r.get('dtype', 'float32')} | {r['batch']} | "
            f"{r['kernel']['median_s'] * 1e3:.3f} / {r['kernel']['p95_s'] * 1e3:.3f} | "
            f"{r['baseline']['median_s'] * 1e3:.3f} / {r['baseline']['p95_s'] * 1e3:.3f} | {r['baseline_name']} | "
            f"{r['ratio']:.2f}x | {thr} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batches", type=int, nargs="+", help="default: cpu 1 4 16 64; cuda 1 .. 256")
    p.add_argument(
        "--ops",
        nargs="+",
        choices=["log_mel", "attention", "attention_sweep"],
        default=["log_mel", "attention"],
        help="attention_sweep (CPU): the measurements behind ops' CPU attention rule",
    )
    p.add_argument("--sweep-batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--sweep-tk", type=int, nargs="+", default=[16, 64, 93, 256])
    p.add_argument("--sweep-tq", type=int, default=93)
    p.add_argument("--sweep-head-dims", type=int, nargs="+", default=[32, 64])
    p.add_argument("--dtypes", nargs="+", default=None, help="attention dtypes (cuda: float32 float16 bfloat16)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--budget", type=float, default=5.0, help="max seconds of repeats per case (at least 3 runs)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    load_before = list(os.getloadavg())
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA GPU available")
    if not _ext.available():
        sys.exit(f"mersdk._C is not built: {_ext.IMPORT_ERROR}")
    batches = args.batches or DEFAULT_BATCHES[args.device]
    dtypes = args.dtypes or (["float32"] if args.device == "cpu" else ["float32", "float16", "bfloat16"])
    rows: list[dict] = []
    if "log_mel" in args.ops:
        rows += bench_log_mel(args.device, batches, args)
    if "attention" in args.ops:
        for dt in dtypes:
            rows += bench_attention(args.device, batches, getattr(torch, dt), args)
    if "attention_sweep" in args.ops:
        if args.device != "cpu":
            sys.exit("attention_sweep is a CPU measurement (the CUDA kernel is always used)")
        rows += sweep_cpu_attention(args)
    info = machine_info(args.device)
    info["load_average_before_run"] = load_before
    main_rows = [r for r in rows if r["op"] != "attention_sweep"]
    sweep_rows = [r for r in rows if r["op"] == "attention_sweep"]
    table = "\n\n".join(
        ([markdown(main_rows)] if main_rows else []) + ([sweep_markdown(sweep_rows)] if sweep_rows else [])
    )
    print(
        f"machine: {info['cpu']} ({info['logical_cores']} logical cores, torch threads {info['torch_threads']})"
        + (f", GPU {info['gpu']['name']}" if "gpu" in info else "")
    )
    print(table)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(
                {
                    "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
                    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "machine": info,
                    "results": rows,
                    "markdown": table,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
