"""``mersdk serve``: a local HTTP service with dynamic batching (``create_app``), and its Ray Serve form
(``mersdk.serve.ray_deployment``). Needs the ``[serve]`` extra (FastAPI, uvicorn, prometheus-client)."""

from .app import ServeConfig, create_app, resolve_under_root
from .batching import Batcher, ServerBusyError, ShuttingDownError

__all__ = ["Batcher", "ServeConfig", "ServerBusyError", "ShuttingDownError", "create_app", "resolve_under_root"]
