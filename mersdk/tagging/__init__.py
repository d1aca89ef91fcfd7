"""Library tagging: walk folders of music, predict each track, store rows (SQLite/JSONL/CSV/Parquet),
optionally write the mood into the files' tags; on one machine (``tag_library``) or a Ray cluster
(``tag_with_ray``). Optional extras: ``mersdk[tag]`` (mutagen: embedded lyrics, tag writing),
``mersdk[decoders]`` (PyAV: AAC/M4A/ALAC/WMA), ``mersdk[ray]`` (Ray Data)."""

from __future__ import annotations

from .runner import TagSummary, tag_library
from .walk import walk_audio

__all__ = ["TagSummary", "tag_library", "tag_with_ray", "walk_audio"]


def __getattr__(name):
    if name == "tag_with_ray":  # importing Ray costs seconds; only when asked for
        from .ray_runner import tag_with_ray

        return tag_with_ray
    raise AttributeError(f"module 'mersdk.tagging' has no attribute {name!r}")
