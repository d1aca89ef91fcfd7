"""The HTTP service behind ``mersdk serve``: a FastAPI (Starlette) app for player backends.

``POST /predict`` and ``POST /analyze`` take the audio as the raw request body (any ``Content-Type``
but JSON and multipart; lyrics text or LRC in the ``lyrics`` query parameter), as a multipart form
(file field ``audio``, text or file field ``lyrics``), or as JSON ``{"path": ..., "lyrics": ...}``
naming a file under the configured ``root`` (no root: paths are refused). ``GET /health``,
``GET /info``, ``GET /metrics`` (Prometheus), and FastAPI's ``/docs`` and ``/openapi.json``.

Lyrics from a client are always read as text, never as a server-side file name.
Status codes: 400 malformed request, 403 path refused, 404 no such file, 413 body too large,
422 audio or lyrics unusable (a ``MersdkError``), 429 queue full (``Retry-After``), 503 not ready or
shutting down, 504 over the request timeout.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations at definition time,
# and `Request` is imported inside create_app (so `import mersdk.serve` needs no FastAPI)
import asyncio
import dataclasses
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import AudioFileNotFoundError, MersdkError
from .batching import Batcher, Job, ServerBusyError, ShuttingDownError

log = logging.getLogger("mersdk.serve")


@dataclass(frozen=True)
class ServeConfig:
    """Server settings. ``root``: the folder JSON ``path`` requests may read (None: none);
    ``max_body_bytes``: the largest request body; ``max_duration_s``: the longest audio;
    ``request_timeout_s``: how long a request may wait and run before 504."""

    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    num_threads: int | None = None
    root: str | None = None
    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_queue: int = 64
    max_body_bytes: int = 50 * 1024 * 1024
    max_duration_s: float = 900.0
    request_timeout_s: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RequestError(MersdkError):
    """A request the server refuses; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def resolve_under_root(root: str | None, path: object) -> str:
    """The real path of ``path`` (relative to ``root``, or absolute) when it is a regular file inside
    ``root`` after every symlink is resolved; else ``RequestError`` 403 (outside, or no root) or 404."""
    if not root:
        raise RequestError(403, "this server reads no server-side paths (start it with --root)")
    if not isinstance(path, str) or not path or "\x00" in path:
        raise RequestError(400, "'path' must be a non-empty string")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real_root, real]) != real_root:
        raise RequestError(403, f"{path!r} is outside the server's root")
    if not os.path.isfile(real):
        raise RequestError(404, f"{path!r}: no such file under the server's root")
    return real


class Metrics:
    """Prometheus metrics in a registry of their own (never the process-wide default)."""

    def __init__(self, max_batch: int):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mersdk_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mersdk_request_seconds",
            "request latency, seconds",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "mersdk_batch_size", "jobs per model call", buckets=tuple(range(1, max_batch + 1)), registry=self.registry
        )
        self.batch_seconds = Histogram("mersdk_batch_seconds", "seconds per model call", registry=self.registry)
        self.queue_depth = Gauge("mersdk_queue_depth", "requests waiting for the model", registry=self.registry)
        self.in_flight = Gauge("mersdk_in_flight", "requests being handled", registry=self.registry)

    def on_batch(self, n: int, seconds: float) -> None:
        self.batch_size.observe(n)
        self.batch_seconds.observe(seconds)


class Service:
    """What one worker holds: its Recognizer, batcher and metrics."""

    def __init__(self, config: ServeConfig, recognizer=None):
        self.config = config
        self.metrics = Metrics(config.max_batch)
        if recognizer is None:
            from ..recognizer import Recognizer

            recognizer = Recognizer(
                model=config.model,
                backend=config.backend,
                device=config.device,
                num_threads=config.num_threads,
                max_duration_s=config.max_duration_s,
            )
        self.recognizer = recognizer
        self.batcher = Batcher(
            recognizer,
            max_batch=config.max_batch,
            max_wait_s=config.max_wait_ms / 1000,
            max_queue=config.max_queue,
            on_batch=self.metrics.on_batch,
        )
        self.metrics.queue_depth.set_function(lambda: self.batcher.depth)
        self.closing = False

    def close(self, timeout: float | None = None) -> None:
        self.closing = True
        if not self.batcher.close(timeout):
            log.warning("the model worker did not finish within %s s", timeout)


async def _read_body(request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if too_big:
            raise RequestError(413, f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _lyrics_bytes(value) -> bytes | None:
    """Client lyrics as bytes: ``load_lyrics`` reads bytes as text, never as a file name."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise RequestError(400, "'lyrics' must be a string")


async def _inputs(request, service: Service) -> tuple[Any, bytes | None]:
    """(audio, lyrics) from a raw, JSON or multipart request."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    cfg = service.config
    body = await _read_body(request, cfg.max_body_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise RequestError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict) or "path" not in data:
            raise RequestError(400, 'a JSON request is {"path": "...", "lyrics": "..."}')
        return resolve_under_root(cfg.root, data["path"]), _lyrics_bytes(data.get("lyrics"))
    if ctype == "multipart/form-data":

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, receive=replay).form(max_files=2, max_fields=4)
        try:
            audio, lyrics_field = form.get("audio"), form.get("lyrics")
            lyrics = await lyrics_field.read() if isinstance(lyrics_field, UploadFile) else lyrics_field
            if isinstance(audio, UploadFile):
                return await audio.read(), _lyrics_bytes(lyrics)
            if form.get("path") is not None:
                return resolve_under_root(cfg.root, form.get("path")), _lyrics_bytes(lyrics)
            raise RequestError(400, "a form needs a file field 'audio' or a field 'path'")
        finally:
            await form.close()
    if not body:
        raise RequestError(400, "empty body: send audio bytes, a form, or JSON with a 'path'")
    return body, _lyrics_bytes(request.query_params.get("lyrics"))


def _status_for(e: Exception) -> int:
    if isinstance(e, RequestError):
        return e.status
    if isinstance(e, ServerBusyError):
        return 429
    if isinstance(e, ShuttingDownError):
        return 503
    if isinstance(e, AudioFileNotFoundError):
        return 404
    if isinstance(e, MersdkError):
        return 422
    return 500


_BODY_DOC = {
    "requestBody": {
        "description": "audio bytes (lyrics in the `lyrics` query parameter), a multipart form (`audio` file, "
        '`lyrics` text), or JSON `{"path": ..., "lyrics": ...}` with a path under the server\'s root',
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "audio": {"type": "string", "format": "binary"},
                        "lyrics": {"type": "string"},
                        "path": {"type": "string"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {"path": {"type": "string"}, "lyrics": {"type": "string"}},
                }
            },
        },
    },
    "parameters": [
        {
            "name": "lyrics",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "lyrics text or LRC, with a raw audio body",
        }
    ],
}


def create_app(config: ServeConfig | None = None, recognizer=None):
    """The ASGI app. The Recognizer is created at startup (``recognizer`` given: that one is used);
    at shutdown every queued request is finished before the worker stops."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    from .._version import __version__

    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app):
        app.state.service = await asyncio.to_thread(Service, config, recognizer)
        log.info("mersdk serve ready: %r", app.state.service.recognizer)
        try:
            yield
        finally:
            # uvicorn has already waited for open requests; this finishes anything still queued
            await asyncio.to_thread(app.state.service.close, config.request_timeout_s)

    app = FastAPI(
        title="mersdk",
        version=__version__,
        lifespan=lifespan,
        description="Music emotion recognition from audio and lyrics.",
    )

    def service_of(request: Request) -> Service:
        service = getattr(request.app.state, "service", None)
        if service is None or service.closing:
            raise ShuttingDownError("the server is not ready or is shutting down")
        return service

    async def handle(request: Request, kind: str, options: dict[str, Any]):
        t0 = time.perf_counter()
        service = getattr(request.app.state, "service", None)
        status, payload, headers = 200, None, {}
        if service is not None:
            service.metrics.in_flight.inc()
        try:
            service = service_of(request)
            audio, lyrics = await _inputs(request, service)
            future = service.batcher.submit(Job(kind, audio, lyrics, options))
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), service.config.request_timeout_s)
            except asyncio.TimeoutError:
                future.cancel()  # still queued: the worker skips it
                raise RequestError(504, f"no result within {service.config.request_timeout_s:g} s") from None
            payload = result.to_dict()
        except Exception as e:
            status = _status_for(e)
            if status == 500:
                log.exception("%s failed", kind)
            payload = {"error": type(e).__name__, "detail": str(e) if status != 500 else "internal error"}
            if isinstance(e, ServerBusyError):
                headers["Retry-After"] = str(e.retry_after_s)
        finally:
            if service is not None:
                service.metrics.in_flight.dec()
                service.metrics.requests.labels(kind, str(status)).inc()
                service.metrics.latency.labels(kind).observe(time.perf_counter() - t0)
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.post("/predict", summary="emotion of one track", openapi_extra=_BODY_DOC)
    async def predict(request: Request):
        return await handle(request, "predict", {})

    @app.post("/analyze", summary="emotion timeline of one track", openapi_extra=_BODY_DOC)
    async def analyze(request: Request, window_s: float = 10.0, hop_s: float = 5.0, smooth: int = 3):
        if not (1.0 <= window_s <= 600 and 0 < hop_s <= 600 and 1 <= smooth <= 99):
            return JSONResponse(
                {"error": "RequestError", "detail": "need 1 <= window_s <= 600, 0 < hop_s <= 600, 1 <= smooth <= 99"},
                status_code=400,
            )
        return await handle(request, "analyze", {"window_s": window_s, "hop_s": hop_s, "smooth": smooth})

    @app.get("/health", summary="ready to serve (503 while starting or shutting down)")
    async def health(request: Request):
        service = getattr(request.app.state, "service", None)
        if service is None or service.closing:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return {"status": "ok", "queue_depth": service.batcher.depth}

    @app.get("/info", summary="model, backend and server settings")
    async def info(request: Request):
        try:
            service = service_of(request)
        except ShuttingDownError as e:
            return JSONResponse({"error": type(e).__name__, "detail": str(e)}, status_code=503)
        return service.recognizer.info() | {"server": service.config.to_dict() | {"pid": os.getpid()}}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics(request: Request):
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        service = getattr(request.app.state, "service", None)
        if service is None:
            return PlainTextResponse("", status_code=503)
        return PlainTextResponse(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


CONFIG_ENV = "MERSDK_SERVE_CONFIG"


def app_from_env():
    """App factory for uvicorn's worker processes (``--workers N``): the config travels as JSON in
    ``MERSDK_SERVE_CONFIG``; each worker process loads its own model."""
    return create_app(ServeConfig(**json.loads(os.environ[CONFIG_ENV])))
