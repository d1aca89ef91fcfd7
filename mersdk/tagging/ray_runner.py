"""``tag_with_ray``: the ``mersdk tag`` job on Ray Data, from one laptop to a cluster.

The driver walks the folders (streaming) into a list of paths, which becomes a Ray dataset;
``map_batches`` runs an actor pool of ``_TagActor``s, each holding one ``Recognizer``: an actor
hashes, decodes (a small thread pool), finds lyrics and predicts a batch of files with the very
functions the single-machine runner uses (``prepare_track``, ``predict_rows``), so both give the
same rows. Rows stream back to the driver, which writes them to the store (SQLite/JSONL/CSV as
they arrive, or Parquet) and skips files already done by the same model (same path and SHA-256).
When the cluster has GPUs each actor takes one (``num_gpus=1``, ``device="cuda"``).

Running on a real cluster:

1. Every node needs the same environment: ``pip install "mersdk[ray,tag,decoders]"`` (same mersdk
   version and model) on each node, or pass ``runtime_env={"pip": [...]}`` via ``ray_init_kwargs``.
2. Every node must see the music at the same path (NFS, a shared mount, or the same copy on
   every node): workers open the paths the driver found. With ``write_tags=True`` the workers write
   the tags, so the mount must be writable.
3. Start the cluster (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the
   others, or KubeRay / ``ray up``), then on the head node or any machine that can reach it::

       mersdk tag /mnt/music --out library.sqlite --ray auto            # on a cluster node
       mersdk tag /mnt/music --out library.sqlite --ray ray://HEAD:10001  # Ray Client from outside
       RAY_ADDRESS=auto mersdk tag /mnt/music --out library.sqlite --ray

   or from Python: ``tag_with_ray(["/mnt/music"], "library.sqlite", address="auto")``.
4. The output file is written by the driver, so it lands on the machine running the command.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import MersdkError
from .runner import Retag, TagSummary, check_extras, predict_rows, prepare_track, tag_row_file
from .store import COLUMNS, ParquetStore, open_store
from .walk import FoundFile, walk_audio

_SKIPPED = "_skipped"
_RETAGGED = "_retagged"


class _TagActor:
    """One Recognizer per actor; ``__call__`` turns a batch of paths into a batch of rows."""

    def __init__(
        self,
        model,
        device: str,
        num_threads: int | None,
        decode_threads: int,
        done: dict,
        write_tags: bool,
        overwrite_mood: bool = False,
        keep_mtime: bool = False,
    ):
        from ..recognizer import Recognizer

        self.rec = Recognizer(model=model, device=device, num_threads=num_threads)
        self.done, self.write_tags = done, write_tags
        self.tag_options = {"overwrite_mood": overwrite_mood, "keep_mtime": keep_mtime}
        self.pool = cf.ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="mersdk-decode")

    def __call__(self, batch: dict[str, Any]):
        import pyarrow as pa

        rec, model_hash = self.rec, self.rec.checkpoint.model_hash
        found = [FoundFile(str(p), str(k)) for p, k in zip(batch["path"], batch["kind"])]
        prepared = list(
            self.pool.map(
                lambda f: prepare_track(
                    f,
                    sample_rate=rec.config.frontend.sample_rate,
                    model_hash=model_hash,
                    max_duration_s=rec.max_duration_s,
                    done=self.done,
                    retag=self.write_tags,
                ),
                found,
            )
        )
        rows, tracks = [], []
        for f, p in zip(found, prepared):
            if isinstance(p, Retag):  # analysed before, tags not written yet
                tag_row_file(p.row, model_hash, dry_run=False, echo=lambda s: None, **self.tag_options)
                rows.append({**p.row, _RETAGGED: True})
            elif p is None:
                rows.append({"path": f.path, "model_hash": model_hash, _SKIPPED: True})
            elif isinstance(p, dict):
                rows.append(p)
            else:
                tracks.append(p)
        for row in predict_rows(rec, tracks):
            if self.write_tags:
                tag_row_file(row, model_hash, dry_run=False, echo=lambda s: None, **self.tag_options)
            rows.append(row)
        schema = ParquetStore.schema().append(pa.field(_SKIPPED, pa.bool_())).append(pa.field(_RETAGGED, pa.bool_()))
        return pa.Table.from_pylist(
            [
                {**{c: r.get(c) for c in COLUMNS}, _SKIPPED: bool(r.get(_SKIPPED)), _RETAGGED: bool(r.get(_RETAGGED))}
                for r in rows
            ],
            schema=schema,
        )


def actor_plan(
    resources: dict, use_gpus: bool | None = None, concurrency: int | None = None, cpus_per_actor: float = 2
) -> dict:
    """How the Recognizer actors are placed, from ``ray.cluster_resources()``: one GPU per actor and
    ``device="cuda"`` when the cluster has GPUs (or ``use_gpus=True``), else CPU actors with
    ``cpus_per_actor`` cores each; ``concurrency`` defaults to one actor per GPU, else CPUs / cores."""
    if cpus_per_actor <= 0:
        raise MersdkError(f"cpus_per_actor must be > 0, got {cpus_per_actor}")
    gpus = int(resources.get("GPU", 0))
    use_gpus = gpus > 0 if use_gpus is None else bool(use_gpus)
    if use_gpus and gpus == 0:
        raise MersdkError("use_gpus=True but the Ray cluster reports no GPU resource")
    if concurrency is None:
        concurrency = gpus if use_gpus else max(1, int(resources.get("CPU", 1) // cpus_per_actor))
    if concurrency < 1:
        raise MersdkError(f"concurrency must be >= 1, got {concurrency}")
    return {
        "device": "cuda" if use_gpus else "cpu",
        "num_gpus": 1 if use_gpus else 0,
        "num_threads": None if use_gpus else max(1, int(cpus_per_actor)),
        "concurrency": int(concurrency),
    }


def tag_with_ray(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    address: str | None = None,
    fmt: str | None = None,
    model: str | os.PathLike | None = None,
    batch_size: int = 8,
    concurrency: int | None = None,
    cpus_per_actor: float = 2,
    decode_threads: int = 2,
    use_gpus: bool | None = None,
    write_tags: bool = False,
    dry_run: bool = False,
    overwrite_mood: bool = False,
    keep_mtime: bool = False,
    ray_init_kwargs: dict | None = None,
    echo: Callable[[str], None] | None = None,
) -> TagSummary:
    """Run the tagging job on Ray Data; returns the same ``TagSummary`` as ``tag_library``.

    address: None joins ``RAY_ADDRESS`` if set, else starts a local Ray; "auto" joins the cluster
    this machine belongs to; "ray://HEAD:10001" connects with Ray Client. If Ray is already
    initialised (``ray.init`` called by the caller), that session is used and left running.
    concurrency: Recognizer actors (default: one per GPU, else total CPUs / cpus_per_actor).
    use_gpus: None = when the cluster has GPUs. See the module docstring for cluster setup."""
    try:
        import ray
    except ImportError:
        raise MersdkError('running on Ray needs the ray extra: pip install "mersdk[ray]"') from None

    from ..checkpoint import read_checkpoint

    echo = echo or (lambda s: print(s, file=sys.stderr))
    check_extras(write_tags, echo)
    started_here = False
    if not ray.is_initialized():
        ray.init(address=address, **(ray_init_kwargs or {}))
        started_here = True
    t0 = time.perf_counter()
    summary = TagSummary()
    try:
        model_hash = read_checkpoint(model).model_hash
        plan = actor_plan(ray.cluster_resources(), use_gpus, concurrency, cpus_per_actor)
        with open_store(os.fspath(out), fmt) as store:
            # dry runs print from the driver, so actors only get rows to re-tag when they write
            done = store.done_map(model_hash, with_untagged_rows=write_tags and not dry_run)

            def on_problem(p: str, m: str) -> None:
                summary.problems.append((p, m))
                echo(f"mersdk tag: {p}: {m}")

            items = [{"path": f.path, "kind": f.kind} for f in walk_audio(paths, on_problem=on_problem)]
            summary.found = len(items)
            if items:
                ds = ray.data.from_items(items).map_batches(
                    _TagActor,
                    fn_constructor_kwargs={
                        "model": os.fspath(model) if model is not None else None,
                        "device": plan["device"],
                        "num_threads": plan["num_threads"],
                        "decode_threads": decode_threads,
                        "done": done,
                        "write_tags": write_tags and not dry_run,
                        "overwrite_mood": overwrite_mood,
                        "keep_mtime": keep_mtime,
                    },
                    batch_size=batch_size,
                    compute=ray.data.ActorPoolStrategy(size=plan["concurrency"]),
                    num_gpus=plan["num_gpus"],
                    num_cpus=cpus_per_actor,
                )
                for row in ds.iter_rows():
                    row = dict(row)
                    retagged = row.pop(_RETAGGED)
                    if row.pop(_SKIPPED):
                        summary.skipped += 1
                        continue
                    if dry_run and write_tags:
                        tag_row_file(row, model_hash, dry_run=True, echo=echo, overwrite_mood=overwrite_mood)
                    store.write(row)
                    failed = bool(row.get("warning") and "tags not written" in row["warning"])
                    if failed:
                        summary.tag_errors += 1
                        summary.problems.append((row["path"], row["warning"]))
                        echo(f"mersdk tag: {row['path']}: {row['warning']}")
                    summary.tags_written += bool(row["error"] is None and row.get("tagged_at") and not failed)
                    if retagged:
                        summary.skipped += 1
                    elif row["error"] is None:
                        summary.predicted += 1
                    else:
                        summary.errors += 1
    finally:
        if started_here:
            ray.shutdown()
    summary.seconds = time.perf_counter() - t0
    return summary
