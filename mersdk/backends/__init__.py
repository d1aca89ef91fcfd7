"""Backend registry: the one place that decides what runs the model, and says why.

Each backend module implements ``base.Backend`` (the written contract) and registers a
``BackendSpec`` with a ``probe`` (is it usable here, and if not, why) and a ``create`` factory.
``backend="auto"`` walks ``PREFERENCE`` (fastest first) and picks the first whose probe passes for the
requested device; an explicit backend that cannot run raises
``BackendUnavailableError`` with the probe's reason. A backend that needs files made from the
checkpoint (an ONNX export, an engine) also gives ``probe_checkpoint``, asked once the device probe
passes. Heavy imports (torch, onnxruntime, tensorrt)
happen inside probes and factories, never at ``import mersdk``.
"""

from __future__ import annotations

from ..errors import BackendUnavailableError
from ..results import BackendChoice
from .base import REGISTRY as _REGISTRY
from .base import Backend, BackendSpec, default_num_threads, register  # noqa: F401  (the registry's public names)

# Fastest first. Backends not registered in this build are simply absent from the registry.
PREFERENCE = ("tensorrt", "cuda", "onnx", "torch")


def _load_builtin() -> None:
    if _REGISTRY:
        return
    from . import onnx_backend, tensorrt_backend, torch_backend  # noqa: F401  (register themselves)


def registered() -> dict[str, BackendSpec]:
    _load_builtin()
    return dict(_REGISTRY)


def availability(device: str = "auto", checkpoint=None) -> dict[str, str | None]:
    """name -> None if usable on ``device`` (or any device for 'auto') with ``checkpoint`` (when
    given), else the reason."""
    out: dict[str, str | None] = {}
    for name in PREFERENCE:
        spec = registered().get(name)
        if spec is None:
            continue
        devices = spec.devices if device == "auto" else (device,)
        reasons = []
        for d in devices:
            r = _probe(spec, d, checkpoint)
            if r is None:
                break
            reasons.append(r)
        else:
            out[name] = "; ".join(reasons)
            continue
        out[name] = None
    return out


def _probe(spec: BackendSpec, device: str, checkpoint=None) -> str | None:
    if device not in spec.devices:
        return f"the {spec.name} backend runs on {', '.join(spec.devices)}, not {device}"
    r = spec.probe(device)
    if r is None and checkpoint is not None and spec.probe_checkpoint is not None:
        r = spec.probe_checkpoint(checkpoint)
    return r


def choose(backend: str = "auto", device: str = "auto", checkpoint=None) -> BackendChoice:
    """Resolve (backend, device) to a concrete choice, or raise BackendUnavailableError. With a
    ``checkpoint``, backends that need files made from it (ONNX export, engine) are checked too."""
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
            r = _probe(spec, d, checkpoint)
            if r is None:
                return BackendChoice(backend, d, "requested explicitly")
            reasons.append(r)
        raise BackendUnavailableError(f"backend {backend!r} cannot run here: {'; '.join(reasons)}")
    skipped: list[str] = []
    for name in PREFERENCE:
        spec = specs.get(name)
        if spec is None:
            continue
        devices = spec.devices if device == "auto" else (device,)
        for d in devices:
            r = _probe(spec, d, checkpoint)
            if r is None:
                why = "fastest available" if not skipped else "fastest available; skipped " + "; ".join(skipped)
                return BackendChoice(name, d, why)
            skipped.append(f"{name} on {d}: {r}")
    raise BackendUnavailableError("no backend can run here: " + "; ".join(skipped))


def create(choice: BackendChoice, checkpoint, **options):
    """Build the chosen backend; options it does not take are an error naming the ones it does."""
    import inspect

    factory = registered()[choice.name].create
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        known = [n for n in params if n not in ("self", "checkpoint", "device")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"the {choice.name} backend has no option(s) {', '.join(unknown)}; it takes: {', '.join(known)}"
            )
    return factory(checkpoint, choice.device, **options)
