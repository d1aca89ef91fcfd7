"""``mersdk bench``: the latency benchmark (see ``mersdk.bench``; also ``benchmarks/latency.py``)."""

from __future__ import annotations


def register(subparsers) -> None:
    from .bench import add_args, main_from_args

    p = subparsers.add_parser("bench", help="latency, cold start, throughput and memory of every backend here")
    add_args(p)
    p.set_defaults(func=main_from_args)
