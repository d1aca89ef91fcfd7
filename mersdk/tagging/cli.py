"""``mersdk tag PATH... --out FILE``: the command-line front of ``tag_library`` / ``tag_with_ray``."""

from __future__ import annotations

import sys

from .store import FORMATS


def cmd_tag(args) -> int:
    if args.dry_run and not args.write_tags:
        print("mersdk tag: --dry-run only applies to --write-tags", file=sys.stderr)
        return 2
    if args.ray is not None:
        from .ray_runner import tag_with_ray

        summary = tag_with_ray(args.paths, args.out, address=args.ray or None, fmt=args.format, model=args.model,
                               batch_size=args.batch_size, concurrency=args.workers, write_tags=args.write_tags,
                               dry_run=args.dry_run)
    else:
        from .runner import tag_library

        summary = tag_library(args.paths, args.out, fmt=args.format, workers=args.workers or 2, batch_size=args.batch_size,
                              model=args.model, backend=args.backend, device=args.device, write_tags=args.write_tags,
                              dry_run=args.dry_run, progress=not args.no_progress, num_threads=args.threads)
    print(f"{summary.found} audio files: {summary.predicted} predicted, {summary.errors} errors, "
          f"{summary.skipped} already done; {summary.tags_written} tagged; {summary.seconds:.1f} s "
          f"({summary.tracks_per_s:.2f} tracks/s) -> {args.out}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("tag", help="predict a whole music library into SQLite/JSONL/CSV (resumable)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (walked recursively)")
    p.add_argument("--out", required=True, help="output file (.sqlite/.db, .jsonl, .csv, .parquet)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the extension, else sqlite)")
    p.add_argument("--workers", type=int, help="decode threads (default 2); with --ray: Recognizer actors "
                   "(default: one per GPU, else CPUs / 2)")
    p.add_argument("--threads", type=int, help="model CPU threads (default: cores minus decode workers, at least 1)")
    p.add_argument("--batch-size", type=int, default=8, help="tracks per predict_batch (default 8)")
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--write-tags", action="store_true", help="also write mood/valence/arousal into each file's tags")
    p.add_argument("--dry-run", action="store_true", help="with --write-tags: print the tags instead of writing them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: no ADDRESS starts a local Ray (or joins RAY_ADDRESS); 'auto' or ray://host:10001 joins a cluster")
    p.set_defaults(func=cmd_tag)
