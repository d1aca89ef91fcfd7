"""``mersdk tag PATH... --out FILE``: the command-line front of ``tag_library`` / ``tag_with_ray``."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from .store import FORMATS

# after Ctrl-C, how long the job may take to stop at its next file or batch before the process exits
# anyway (rows are committed one by one, so nothing written is lost; a tag write cut short leaves
# the old file and at worst a temporary copy, see write_tags)
_STOP_GRACE_S = 0.6


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _run_interruptibly(job):
    """Run ``job(stop)`` in a thread while the main thread waits, so Ctrl-C is seen at once even when
    the job is inside a long model call or a worker is stuck on a slow disk."""
    stop = threading.Event()
    box: dict = {}

    def work():
        try:
            box["result"] = job(stop)
        except BaseException as e:
            box["error"] = e

    th = threading.Thread(target=work, name="mersdk-tag", daemon=True)
    th.start()
    try:
        while th.is_alive():
            th.join(0.1)
    except KeyboardInterrupt:
        stop.set()
        th.join(_STOP_GRACE_S)
        summary = box.get("result")
        done = f" ({summary.predicted + summary.errors} rows written)" if summary is not None else ""
        print(
            f"\nmersdk tag: interrupted{done}; the rows written are kept, run the same command to resume",
            file=sys.stderr,
        )
        sys.stderr.flush()
        sys.stdout.flush()
        # decode workers may be blocked in a read that no signal ends; their threads would be joined
        # at interpreter exit, so leave without waiting for them
        os._exit(130)
    if "error" in box:
        raise box["error"]
    return box["result"]


def cmd_tag(args) -> int:
    if args.dry_run and not args.write_tags:
        print("mersdk tag: --dry-run only applies to --write-tags", file=sys.stderr)
        return 2
    if args.overwrite_mood and not args.write_tags:
        print("mersdk tag: --overwrite-mood only applies to --write-tags", file=sys.stderr)
        return 2
    if args.ray is not None:
        from .ray_runner import tag_with_ray

        summary = tag_with_ray(
            args.paths,
            args.out,
            address=args.ray or None,
            fmt=args.format,
            model=args.model,
            batch_size=args.batch_size,
            concurrency=args.workers,
            write_tags=args.write_tags,
            dry_run=args.dry_run,
            overwrite_mood=args.overwrite_mood,
            keep_mtime=args.keep_mtime,
        )
    else:
        from .runner import tag_library

        summary = _run_interruptibly(
            lambda stop: tag_library(
                args.paths,
                args.out,
                fmt=args.format,
                workers=args.workers or 2,
                batch_size=args.batch_size,
                model=args.model,
                backend=args.backend,
                device=args.device,
                write_tags=args.write_tags,
                dry_run=args.dry_run,
                overwrite_mood=args.overwrite_mood,
                keep_mtime=args.keep_mtime,
                progress=not args.no_progress,
                num_threads=args.threads,
                stop=stop,
            )
        )
    failed = (
        f", {summary.tag_errors} tag writes FAILED (see above; files left as they were)" if summary.tag_errors else ""
    )
    print(
        f"{summary.found} audio files: {summary.predicted} predicted, {summary.errors} errors, "
        f"{summary.skipped} already done; {summary.tags_written} tagged{failed}; {summary.seconds:.1f} s "
        f"({summary.tracks_per_s:.2f} tracks/s) -> {args.out}",
        file=sys.stderr,
    )
    return 1 if summary.tag_errors else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("tag", help="predict a whole music library into SQLite/JSONL/CSV (resumable)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (walked recursively)")
    p.add_argument("--out", required=True, help="output file (.sqlite/.db, .jsonl, .csv, .parquet); a regular file")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the extension, else sqlite)")
    p.add_argument(
        "--workers",
        type=positive_int,
        help="decode threads (default 2); with --ray: Recognizer actors (default: one per GPU, else CPUs / 2)",
    )
    p.add_argument(
        "--threads", type=positive_int, help="model CPU threads (default: cores minus decode workers, at least 1)"
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="tracks per predict_batch (default 8)")
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--write-tags",
        action="store_true",
        help="also write mood (standard MOOD/TMOO fields) and valence/arousal into each file's tags, "
        "atomically; files analysed by an earlier run are tagged from their stored rows",
    )
    p.add_argument("--dry-run", action="store_true", help="with --write-tags: print the tags instead of writing them")
    p.add_argument(
        "--overwrite-mood",
        action="store_true",
        help="with --write-tags: replace a mood the file already has (default: keep the user's mood)",
    )
    p.add_argument(
        "--keep-mtime",
        action="store_true",
        help="with --write-tags: keep each file's modification time (default: the time of the write)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray Data: no ADDRESS starts a local Ray (or joins RAY_ADDRESS); "
        "'auto' or ray://host:10001 joins a cluster",
    )
    p.set_defaults(func=cmd_tag)
