"""``mersdk serve``: run the HTTP service (see ``mersdk.serve.app``) on uvicorn."""

from __future__ import annotations

import json
import os
import sys


def cmd_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise ImportError('mersdk serve needs the [serve] extra: pip install "mersdk[serve]"') from None
    from .app import CONFIG_ENV, ServeConfig, create_app

    if args.root is not None and not os.path.isdir(args.root):
        print(f"mersdk serve: --root {args.root}: not a folder", file=sys.stderr)
        return 2
    config = ServeConfig(
        model=args.model,
        backend=args.backend,
        device=args.device,
        num_threads=args.threads,
        root=os.path.realpath(args.root) if args.root else None,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_duration_s=args.max_duration_s,
        request_timeout_s=args.timeout_s,
    )
    common = dict(
        host=args.host,
        port=args.port,
        timeout_graceful_shutdown=args.grace_s,
        limit_concurrency=args.limit_concurrency,
        log_level=args.log_level,
    )
    if args.workers > 1:
        # each worker process is its own model instance; they share the port
        os.environ[CONFIG_ENV] = json.dumps(config.to_dict())
        uvicorn.run("mersdk.serve.app:app_from_env", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(config), **common)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="HTTP service with dynamic batching (POST /predict, /analyze; /metrics)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--root", help='folder whose files JSON {"path": ...} requests may name (default: none)')
    p.add_argument("--workers", type=int, default=1, help="server processes, one model each (default 1)")
    p.add_argument("--threads", type=int, help="model CPU threads per worker")
    p.add_argument("--max-batch", type=int, default=8, help="requests per model call (default 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="longest wait to fill a batch (default 10 ms)")
    p.add_argument("--max-queue", type=int, default=64, help="waiting requests before 429 (default 64)")
    p.add_argument("--max-body-mb", type=float, default=50.0, help="largest request body (default 50 MB)")
    p.add_argument("--max-duration-s", type=float, default=900.0, help="longest audio accepted (default 900 s)")
    p.add_argument("--timeout-s", type=float, default=60.0, help="per-request limit, queue included (default 60 s)")
    p.add_argument("--grace-s", type=float, default=30.0, help="on SIGTERM/Ctrl-C, time to finish open requests")
    p.add_argument("--limit-concurrency", type=int, default=256, help="open connections before 503 (default 256)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_serve)
