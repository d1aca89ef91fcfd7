"""The same HTTP app on Ray Serve: replicas across a Ray cluster, a GPU per replica where there are GPUs.

    from mersdk.serve import ServeConfig
    from mersdk.serve.ray_deployment import build
    from ray import serve
    serve.run(build(ServeConfig(max_batch=16), num_replicas=2), route_prefix="/")

or from the shell: ``serve run mersdk.serve.ray_deployment:app_builder num_replicas=2 max_batch=16``.
Each replica is one process with its own model and its own dynamic batcher (the app of
``mersdk.serve.app``); Ray's proxy spreads requests over the replicas. The endpoints, limits and
metrics are those of ``mersdk serve``; ``/metrics`` reports the replica that answered.
Needs ``pip install "mersdk[ray-serve]"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .app import ServeConfig, create_app


def gpus_per_replica(requested: float | None) -> float:
    """``requested``, or 1 when the Ray cluster this process is connected to has a GPU, else 0."""
    if requested is not None:
        return float(requested)
    import ray

    return 1.0 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def build(
    config: ServeConfig | None = None,
    *,
    num_replicas: int = 1,
    num_gpus: float | None = None,
    num_cpus: float = 1.0,
    name: str = "mersdk",
):
    """A bound Ray Serve application of the mersdk app (``serve.run`` it)."""
    from ray import serve

    config = config or ServeConfig()
    if num_replicas < 1:
        raise ValueError("num_replicas must be >= 1")

    def asgi_app():  # runs in each replica: its own Recognizer is created at the app's startup
        return create_app(config)

    deployment = serve.deployment(
        serve.ingress(asgi_app)(type("MersdkServe", (), {})),
        name=name,
        num_replicas=num_replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": gpus_per_replica(num_gpus)},
        # Ray may hand a replica this many requests at once; past it Ray queues; the app's 429 stays the limit
        max_ongoing_requests=config.max_queue + config.max_batch,
    )
    # serve.deployment(cls, ...) returns a Deployment; its annotation only describes the decorator form
    return deployment.bind()  # type: ignore[attr-defined]


_INTS = {"max_batch", "max_queue", "max_body_bytes", "num_threads", "num_replicas"}
_FLOATS = {"max_wait_ms", "max_duration_s", "request_timeout_s", "num_gpus", "num_cpus"}


def parse_builder_args(args: dict[str, Any]) -> tuple[ServeConfig, dict[str, Any]]:
    """``serve run`` passes ``key=value`` strings: (ServeConfig, build options) with the right types."""
    names = {f.name for f in dataclasses.fields(ServeConfig)}
    cfg: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for key, value in args.items():
        if key not in names and key not in ("num_replicas", "num_gpus", "num_cpus"):
            known = ", ".join(["num_replicas", "num_gpus", "num_cpus", *sorted(names)])
            raise ValueError(f"unknown option {key!r}; use one of {known}")
        value = int(value) if key in _INTS else float(value) if key in _FLOATS else str(value)
        (cfg if key in names else opts)[key] = value
    return ServeConfig(**cfg), opts


def app_builder(args: dict[str, Any]):
    """For ``serve run mersdk.serve.ray_deployment:app_builder key=value ...``: ``num_replicas``,
    ``num_gpus``, ``num_cpus`` and any ``ServeConfig`` field."""
    config, opts = parse_builder_args(args)
    return build(config, **opts)
