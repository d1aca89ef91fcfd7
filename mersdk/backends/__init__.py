"""Backend registry: the one place that decides what runs the model, and says why.

Each backend module registers a ``BackendSpec`` with a ``probe`` (is it usable here, and if not,
why) and a ``create`` factory. ``backend="auto"`` walks ``PREFERENCE`` (fastest first) and picks the
first whose probe passes for the requested device; an explicit backend that cannot run raises
``BackendUnavailableError`` with the probe's reason. Heavy imports (torch, onnxruntime, tensorrt)
happen inside probes and factories, never at ``import mersdk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import BackendUnavailableError
from ..results import BackendChoice

# Fastest first. Backends not registered in this build are simply absent from the registry.
PREFERENCE = ("tensorrt", "cuda", "onnx", "torch")


@dataclass(frozen=True)
class BackendSpec:
    name: str
    devices: tuple[str, ...]
    # probe(device) -> None when usable, else the reason it is not
    probe: Callable[[str], str | None]
    create: Callable[..., object]


_REGISTRY: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> None:
    _REGISTRY[spec.name] = spec


def _load_builtin() -> None:
    if _REGISTRY:
        return
    from . import torch_backend  # noqa: F401  (registers itself)


def registered() -> dict[str, BackendSpec]:
    _load_builtin()
    return dict(_REGISTRY)


def availability(device: str = "auto") -> dict[str, str | None]:
    """name -> None if usable on ``device`` (or any device for 'auto'), else the reason."""
    out = {}
    for name in PREFERENCE:
        spec = registered().get(name)
        if spec is None:
            continue
        devices = spec.devices if device == "auto" else (device,)
        reasons = []
        for d in devices:
            r = _probe(spec, d)
            if r is None:
                break
            reasons.append(r)
        else:
            out[name] = "; ".join(reasons)
            continue
        out[name] = None
    return out


def _probe(spec: BackendSpec, device: str) -> str | None:
    if device not in spec.devices:
        return f"the {spec.name} backend runs on {', '.join(spec.devices)}, not {device}"
    return spec.probe(device)


def choose(backend: str = "auto", device: str = "auto") -> BackendChoice:
    """Resolve (backend, device) to a concrete choice, or raise BackendUnavailableError."""
    specs = registered()
    if device not in ("auto", "cpu", "cuda"):
        raise BackendUnavailableError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    if backend != "auto":
        spec = specs.get(backend)
        if spec is None:
            known = ", ".join(n for n in PREFERENCE if n in specs)
            raise BackendUnavailableError(f"backend {backend!r} is not available in this build (available: {known})")
        devices = spec.devices if device == "auto" else (device,)
        reasons = []
        for d in devices:
            r = _probe(spec, d)
            if r is None:
                return BackendChoice(backend, d, "requested explicitly")
            reasons.append(r)
        raise BackendUnavailableError(f"backend {backend!r} cannot run here: {'; '.join(reasons)}")
    skipped = []
    for name in PREFERENCE:
        spec = specs.get(name)
        if spec is None:
            continue
        devices = spec.devices if device == "auto" else (device,)
        for d in devices:
            r = _probe(spec, d)
            if r is None:
                why = "fastest available" if not skipped else "fastest available; skipped " + "; ".join(skipped)
                return BackendChoice(name, d, why)
            skipped.append(f"{name}/{d}: {r}")
    raise BackendUnavailableError("no backend can run here: " + "; ".join(skipped))


def create(choice: BackendChoice, checkpoint, **options):
    return registered()[choice.name].create(checkpoint, choice.device, **options)
