"""``tag_with_ray`` on a local Ray instance gives the same rows as the single-process run."""

import json
import os
import tempfile

import pytest
from tagging_helpers import SOUNDFILE_CONTAINERS, needs_ray, write_clip

from mersdk.tagging import tag_library
from mersdk.tagging.store import open_store

pytestmark = [needs_ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # Ray puts the driver's working directory on its workers' sys.path: started from the checkout,
    # workers would import the source tree (no compiled _C) instead of the installed package
    here = os.getcwd()
    os.chdir(tempfile.gettempdir())
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    finally:
        os.chdir(here)
    yield ray
    ray.shutdown()


def _rows(out):
    with open_store(str(out)) as store:
        return {os.path.basename(r["path"]): r for r in store.rows()}


def test_ray_matches_single_process(tmp_path, recognizer, local_ray):
    from mersdk.tagging import tag_with_ray

    lib = tmp_path / "lib"
    lib.mkdir()
    for i, c in enumerate(["wav", "flac", "ogg-vorbis", "mp3"]):
        write_clip(lib / f"t{i}{SOUNDFILE_CONTAINERS[c][0]}", c, seconds=1.0 + 0.25 * i, seed=i)
    (lib / "t0.lrc").write_text("[00:00.10]la la\n")
    (lib / "broken.wav").write_bytes(b"")
    single = tag_library([lib], tmp_path / "single.sqlite", recognizer=recognizer, progress=False)
    s = tag_with_ray([lib], tmp_path / "ray.sqlite", concurrency=1, cpus_per_actor=2, batch_size=2)
    assert (s.found, s.predicted, s.errors) == (single.found, single.predicted, single.errors) == (5, 4, 1)
    a, b = _rows(tmp_path / "single.sqlite"), _rows(tmp_path / "ray.sqlite")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name]["label"] == b[name]["label"], name
        assert (a[name]["error"] is None) == (b[name]["error"] is None)
        assert a[name]["lyrics_source"] == b[name]["lyrics_source"] and a[name]["sha256"] == b[name]["sha256"]
        if a[name]["error"] is None:
            pa, pb = json.loads(a[name]["probabilities"]), json.loads(b[name]["probabilities"])
            assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) < 1e-5 for k in pa)
            assert (
                abs(a[name]["valence"] - b[name]["valence"]) < 1e-5
                and abs(a[name]["arousal"] - b[name]["arousal"]) < 1e-5
            )
    # resumable on Ray too; and Parquet output
    again = tag_with_ray([lib], tmp_path / "ray.sqlite", concurrency=1, cpus_per_actor=2)
    assert (again.skipped, again.errors) == (4, 1)
    tag_with_ray([lib], tmp_path / "ray.parquet", concurrency=1, cpus_per_actor=2)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ray.parquet")
    assert table.num_rows == 5 and sorted(table.column("label").to_pylist(), key=str) == sorted(
        (r["label"] for r in a.values()), key=str
    )


def test_ray_write_tags_after_analysis(tmp_path, local_ray):
    """--write-tags on Ray tags files an earlier run analysed, from their stored rows, in the actors."""
    pytest.importorskip("mutagen", reason='mutagen is not installed (pip install "mersdk[tag]")')
    import mutagen

    from mersdk.tagging import tag_with_ray

    lib = tmp_path / "lib"
    lib.mkdir()
    files = [write_clip(lib / "a.flac", "flac"), write_clip(lib / "b.mp3", "mp3", seed=1)]
    out = tmp_path / "o.sqlite"
    first = tag_with_ray([lib], out, concurrency=1, cpus_per_actor=2)
    assert (first.predicted, first.tags_written) == (2, 0)
    tagged = tag_with_ray([lib], out, concurrency=1, cpus_per_actor=2, write_tags=True)
    assert (tagged.predicted, tagged.skipped, tagged.tags_written, tagged.tag_errors) == (0, 2, 2, 0)
    rows = _rows(out)
    for f in files:
        tags = mutagen.File(f).tags
        mood = tags.get("TMOO") or tags.get("MOOD")
        assert str(mood[0] if isinstance(mood, list) else mood.text[0]) == rows[f.name]["label"]
        assert rows[f.name]["tagged_at"] and rows[f.name]["size_bytes"] == f.stat().st_size
