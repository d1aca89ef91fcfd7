"""Tampered and damaged checkpoint folders: every case is refused with a clear ``CheckpointError``
naming the field or file, cheaply (before anything the damage could make huge is allocated), and
without hanging; damaged ONNX exports are refused with the reason, ``auto`` falls back, and an
interrupted re-export leaves the previous export usable or clearly absent."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import time
from pathlib import Path

import pytest

from mersdk.checkpoint import (
    CONFIG_NAME,
    MAX_CONFIG_BYTES,
    MAX_WEIGHTS_BYTES,
    WEIGHTS_NAME,
    load_model,
    model_config_sha256,
    read_checkpoint,
    save_checkpoint,
    sha256_file,
)
from mersdk.errors import BackendUnavailableError, CheckpointError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory) -> Path:
    from mersdk.config import ModelConfig
    from mersdk.model import EmotionModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("small") / "ck"
    save_checkpoint(EmotionModel(ModelConfig(d_model=64, n_heads=2, n_layers=1, ffn_dim=64)), path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copy2(src / name, dst / name)
    return dst


def _meta(path: Path) -> dict:
    return json.loads((path / CONFIG_NAME).read_text())


def _write_meta(path: Path, meta, rehash: bool = True) -> None:
    """Write a forged config.json; with ``rehash`` its model_sha256 is made consistent, so the only
    defect left is the one under test (the hash is no defence against someone who can recompute it)."""
    if rehash and isinstance(meta, dict) and isinstance(meta.get("model"), (dict, list)):
        meta["model_sha256"] = model_config_sha256(meta["model"], meta["weights_sha256"])
    (path / CONFIG_NAME).write_text(json.dumps(meta))


def _set(d: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d[p]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()

# (dotted key in the model config, value, what the error must say)
CONFIG_CASES = [
    ("n_layers", 10_000_000, "'n_layers'.*outside"),
    ("d_model", 10**9, "'d_model'.*outside"),
    ("frontend.n_mels", 10**7, "'frontend.n_mels'.*outside"),
    ("ffn_dim", 10**9, "'ffn_dim'.*outside"),
    ("text_encoder.hidden_size", 10**6, "'text_encoder.hidden_size'"),
    ("n_heads", 0, "'n_heads'.*outside"),
    ("n_heads", 3, "'n_heads'.*not divisible"),
    ("frontend.hop_length", 0, "'frontend.hop_length'"),
    ("frontend.sample_rate", 0, "'frontend.sample_rate'"),
    ("frontend.n_fft", -1, "'frontend.n_fft'"),
    ("n_layers", "2", "'n_layers'.*integer.*str"),
    ("n_layers", 2.0, "'n_layers'.*integer.*float"),
    ("d_model", True, "'d_model'.*integer.*bool"),
    ("n_layers", None, "'n_layers'.*integer"),
    ("dropout", "0.1", "'dropout'.*number"),
    ("dropout", 1.5, "'dropout'"),
    ("window_s", 0, "'window_s'"),
    ("window_s", 1e12, "'window_s'"),
    ("hop_s", 0, "'hop_s'"),
    ("hop_s", -30.0, "'hop_s'"),
    ("frontend.f_max", 50000.0, "'frontend.f_max'.*sample_rate / 2"),
    ("frontend.f_min", 9000.0, "'frontend.f_max'.*f_min < f_max"),
    ("frontend.log_floor", 0.0, "'frontend.log_floor'"),
    ("frontend.mel_scale", 7, "'frontend.mel_scale'.*string"),
    ("frontend.mel_scale", "bark", "'frontend.mel_scale'.*one of"),
    ("frontend.mel_norm", ["slaney"], "'frontend.mel_norm'.*string"),
    ("frontend.compression", "gzip", "'frontend.compression'"),
    ("frontend.log_gain", -1.0, "'frontend.log_gain'"),
    ("frontend.log_gain", "big", "'frontend.log_gain'.*number"),
    ("frontend.log_gain", 1e300, "'frontend.log_gain'"),
    ("text_encoder.max_tokens", 1, "'text_encoder.max_tokens'"),
    ("text_encoder.source", "", "'text_encoder.source'"),
    ("text_encoder.source", ["a"], "'text_encoder.source'.*string"),
    ("text_encoder", "minilm", "'text_encoder'.*JSON object"),
    ("frontend", [], "'frontend'.*JSON object"),
    ("fusion", "concat", "'fusion'.*one of"),
    ("primary_task", 5, "'primary_task'.*string"),
    ("primary_task", "mood", "primary_task 'mood' is not one of the tasks"),
    ("description", 1, "'description'.*string"),
    ("description", "x" * 200_000, "'description'.*length"),
    ("tasks", [], "'tasks'.*entries"),
    ("tasks", {"name": "q"}, "'tasks'.*list"),
    ("tasks", [{"name": "q"}], "'tasks\\[0\\]'.*exactly"),
    ("tasks", [{"name": "q", "labels": ["only"]}], "'tasks\\[0\\].labels'"),
    ("tasks", [{"name": "q", "labels": ["a", "a"]}], "'tasks\\[0\\].labels'.*twice"),
    ("tasks", [{"name": "va", "labels": ["a", "b"]}], "'tasks\\[0\\].name'.*reserved"),
    ("tasks", [{"name": "q", "labels": ["a", 3]}], "'tasks\\[0\\].labels'.*string"),
    ("tasks", [{"name": f"t{i}", "labels": ["a", "b"]} for i in range(100)], "'tasks'.*entries"),
    ("cnn_stages", [[8, 2]], "'cnn_stages\\[0\\]'.*entries"),
    ("cnn_stages", [[100_000, 2, 2]], "'cnn_stages\\[0\\]'.*outside"),
    ("cnn_stages", [[8, 2, 2]] * 7, "'cnn_stages\\[6\\]'.*nothing"),
    ("cnn_stages", [[8, 2, 2]] * 100, "'cnn_stages'.*entries"),
    ("cnn_stages", "8,2,2", "'cnn_stages'.*list"),
    ("cnn_stages", [[2048, 1, 1]] * 3, "'cnn_stages'.*activations"),
    ("frontend.n_fft", 64, "'frontend.n_mels'.*n_fft"),
    ("from_the_future", 1, "unknown key.*from_the_future"),
    ("frontend.gain", 1, "unknown key.*frontend.gain"),
    ("d_model", _DELETE, "missing required key.*d_model"),
    ("frontend.hop_length", _DELETE, "missing required key.*frontend.hop_length"),
    ("text_encoder", _DELETE, "missing required key.*text_encoder"),
    ("tasks", _DELETE, "missing required key.*tasks"),
]


@pytest.mark.parametrize("key,value,match", CONFIG_CASES, ids=[f"{k}={str(v)[:20]}" for k, v, _ in CONFIG_CASES])
def test_tampered_model_config_is_refused_naming_the_field(small_ckpt, tmp_path, key, value, match):
    path = _copy(small_ckpt, tmp_path / "ck")
    meta = _meta(path)
    _set(meta["model"], key, value)
    _write_meta(path, meta)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)
    assert time.perf_counter() - t0 < 5.0


def test_optional_newer_keys_may_be_absent(small_ckpt, tmp_path):
    """Keys added after format 1 (frontend.mel_scale, ...) take their defaults: old checkpoints load."""
    path = _copy(small_ckpt, tmp_path / "ck")
    meta = _meta(path)
    for k in ("mel_scale", "mel_norm", "compression", "log_gain"):
        del meta["model"]["frontend"][k]
    _write_meta(path, meta)
    assert read_checkpoint(path).config.frontend.mel_scale == "htk"


# (raw config.json text, or a function of the valid meta returning it; what the error must say)
RAW_CASES = {
    "json_list": ("[1, 2, 3]", "must hold a JSON object, not a list"),
    "json_string": ('"config"', "must hold a JSON object, not a str"),
    "deeply_nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "nested_past_limit": ('{"metadata": ' + '{"a": ' * 40 + "1" + "}" * 41, "nested more than 32"),
    "nan": (lambda m: json.dumps(m).replace('"dropout": 0.1', '"dropout": NaN'), "NaN is not a JSON number"),
    "infinity": (lambda m: json.dumps(m).replace('"f_max": 8000.0', '"f_max": Infinity'), "Infinity is not"),
    "float_overflow": (lambda m: json.dumps(m).replace('"f_max": 8000.0', '"f_max": 1e999'), "overflows"),
    "huge_int": (lambda m: json.dumps(m).replace('"n_layers": 1', '"n_layers": ' + "9" * 10_000), "not valid JSON"),
    "not_json": ("model: {d_model: 64}", "not valid JSON"),
    "not_utf8": (b"\xff\xfe{\x00", "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "oversized": (lambda m: json.dumps(dict(m, metadata={"pad": "x" * MAX_CONFIG_BYTES})), "at most"),
    "format_as_string": (lambda m: json.dumps(dict(m, format_version="2")), "format 2 .*reads formats 1, 2"),
    "format_as_bool": (lambda m: json.dumps(dict(m, format_version=True)), "format True"),
    "format_future": (lambda m: json.dumps(dict(m, format_version=3)), "format 3"),
    "model_missing": (lambda m: json.dumps({k: v for k, v in m.items() if k != "model"}), "'model' is missing"),
    "model_is_list": (lambda m: json.dumps(dict(m, model=[1])), "'model': must be a JSON object"),
    "model_hash_missing": (
        lambda m: json.dumps({k: v for k, v in m.items() if k != "model_sha256"}),
        "'model_sha256' is missing",
    ),
    "weights_hash_not_hex": (lambda m: json.dumps(dict(m, weights_sha256="../../x")), "weights_sha256 must be 64"),
    "weights_hash_number": (lambda m: json.dumps(dict(m, weights_sha256=7)), "weights_sha256 must be 64"),
    "unknown_top_level_key": (lambda m: json.dumps(dict(m, run_this="rm -rf")), "unknown key.*run_this"),
    "metadata_list": (lambda m: json.dumps(dict(m, metadata=[1])), "metadata must be a JSON object"),
    "config_edited_after_save": (
        lambda m: json.dumps(m).replace('"dropout": 0.1', '"dropout": 0.2'),
        "model_sha256 does not match",
    ),
}


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_tampered_config_file_is_refused(small_ckpt, tmp_path, case):
    path = _copy(small_ckpt, tmp_path / "ck")
    raw, match = RAW_CASES[case]
    raw = raw(_meta(path)) if callable(raw) else raw
    (path / CONFIG_NAME).write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)


@pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME])
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "directory"])
def test_special_files_are_refused_without_hanging(small_ckpt, tmp_path, name, kind):
    path = _copy(small_ckpt, tmp_path / "ck")
    (path / name).unlink()
    if kind == "fifo":
        os.mkfifo(path / name)
    elif kind == "dev_zero":
        os.symlink("/dev/zero", path / name)
    else:
        (path / name).mkdir()
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="not a regular file|cannot open"):
        read_checkpoint(path)
    assert time.perf_counter() - t0 < 2.0


def _safetensors(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _with_weights(small_ckpt, tmp_path, blob: bytes) -> Path:
    """A checkpoint whose weights file is ``blob``, with every hash in config.json made to match."""
    path = _copy(small_ckpt, tmp_path / "ck")
    (path / WEIGHTS_NAME).write_bytes(blob)
    meta = _meta(path)
    meta["weights_sha256"] = sha256_file(path / WEIGHTS_NAME)
    _write_meta(path, meta)
    return path


WEIGHT_CASES = {
    "tensor_of_100_GB": (
        _safetensors(
            {"w": {"dtype": "F32", "shape": [25_000_000_000], "data_offsets": [0, 100_000_000_000]}}, b"\0" * 64
        ),
        "claims shape",
    ),
    "shape_larger_than_offsets": (
        _safetensors({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 64]}}, b"\0" * 64),
        "claims shape",
    ),
    "header_length_2**63": (_safetensors({}, b"", length=1 << 63), "not a safetensors file"),
    "header_not_json": (struct.pack("<Q", 4) + b"{{{{", "not valid JSON"),
    "header_a_list": (_safetensors([1]), "not a JSON object"),  # type: ignore[arg-type]
    "unknown_dtype": (
        _safetensors({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16),
        "unknown dtype",
    ),
    "negative_dim": (
        _safetensors({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16),
        "malformed",
    ),
    "overlapping": (
        _safetensors(
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            },
            b"\0" * 32,
        ),
        "overlap",
    ),
    "trailing_bytes": (
        _safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 4096),
        "covers 16 of 4,096",
    ),
    "empty_file": (b"", "not a safetensors file"),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_tampered_weights_header_is_refused_cheaply(small_ckpt, tmp_path, case):
    blob, match = WEIGHT_CASES[case]
    path = _with_weights(small_ckpt, tmp_path, blob)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 200_000  # KiB: nothing big allocated


def test_truncated_weights_are_refused(small_ckpt, tmp_path):
    path = _copy(small_ckpt, tmp_path / "ck")
    data = (path / WEIGHTS_NAME).read_bytes()
    (path / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="claims shape|covers"):
        read_checkpoint(path)


def test_oversized_weights_file_is_refused_before_hashing(small_ckpt, tmp_path):
    path = _copy(small_ckpt, tmp_path / "ck")
    with open(path / WEIGHTS_NAME, "r+b") as f:  # sparse: costs no disk
        f.truncate(MAX_WEIGHTS_BYTES + 1)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="at most"):
        read_checkpoint(path)
    assert time.perf_counter() - t0 < 2.0


def test_config_claiming_a_huge_model_is_refused_before_allocating(small_ckpt, tmp_path):
    """Every size inside its bound but ~170 GB of weights implied, with the small model's weights and
    consistent hashes: the header's shapes disagree with the config before the model is built."""
    path = _copy(small_ckpt, tmp_path / "ck")
    meta = _meta(path)
    meta["model"].update(d_model=4096, n_heads=64, n_layers=64, ffn_dim=65536)
    _write_meta(path, meta)
    ck = read_checkpoint(path)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="weights do not match the model config.*missing"):
        load_model(ck)
    assert time.perf_counter() - t0 < 30.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 500_000  # KiB


def test_weights_of_another_model_are_refused_by_shape(small_ckpt, tmp_path):
    from mersdk.config import ModelConfig
    from mersdk.model import EmotionModel

    other = save_checkpoint(
        EmotionModel(ModelConfig(d_model=32, n_heads=2, n_layers=1, ffn_dim=64)), tmp_path / "other"
    )
    path = _with_weights(small_ckpt, tmp_path, (other.path / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_model(read_checkpoint(path))


# ONNX exports ---------------------------------------------------------------------------------------
def _export_copy(exported_ckpt: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for p in Path(exported_ckpt).iterdir():
        if p.is_file():
            shutil.copy2(p, dst / p.name)
    return dst


def _manifest(path: Path) -> dict:
    from mersdk.export import MANIFEST

    return json.loads((path / MANIFEST).read_text())


def _write_manifest(path: Path, manifest) -> None:
    from mersdk.export import MANIFEST

    (path / MANIFEST).write_text(json.dumps(manifest))


def _why(path: Path) -> str:
    from mersdk.export import find_export

    exp, why = find_export(read_checkpoint(path))
    assert exp is None
    return why


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])


def _retarget(key: str, name: str):
    def f(path: Path) -> None:
        m = _manifest(path)
        m[key]["file"] = name
        _write_manifest(path, m)

    return f


def _symlink_out(path: Path) -> None:
    outside = path.parent / "outside.onnx"
    shutil.copy2(path / "model.onnx", outside)  # the right bytes, hash and all: still outside the folder
    (path / "model.onnx").unlink()
    os.symlink(outside, path / "model.onnx")


def _fifo(name: str):
    def f(path: Path) -> None:
        (path / name).unlink()
        os.mkfifo(path / name)

    return f


def _edit(fn):
    def f(path: Path) -> None:
        m = _manifest(path)
        m = fn(m)
        _write_manifest(path, m)

    return f


EXPORT_CASES = {
    "truncated_model_onnx": (lambda p: _truncate(p / "model.onnx"), "model.onnx is damaged"),
    "truncated_text_encoder": (lambda p: _truncate(p / "text_encoder.onnx"), "text_encoder.onnx is damaged"),
    "edited_tokenizer": (lambda p: (p / "tokenizer.json").write_text("{}"), "tokenizer.json is damaged"),
    "missing_model_onnx": (lambda p: (p / "model.onnx").unlink(), "model.onnx is missing"),
    "path_traversal": (_retarget("model", "../../../../etc/passwd"), "not a file in the export folder"),
    "absolute_path": (_retarget("text_encoder", "/etc/passwd"), "not a file in the export folder"),
    "dot_dot": (_retarget("tokenizer", ".."), "not a file in the export folder"),
    "nul_in_name": (_retarget("model", "model\0.onnx"), "not a file in the export folder"),
    "symlink_leading_out": (_symlink_out, "leads outside the export folder"),
    "fifo_model": (_fifo("model.onnx"), "not a regular file"),
    "file_not_a_string": (_retarget("model", ["model.onnx"]), "needs a file name"),
    "sha256_not_hex": (_edit(lambda m: (m["model"].update(sha256="z" * 64), m)[1]), "needs a file name and a sha256"),
    "entry_missing": (_edit(lambda m: {k: v for k, v in m.items() if k != "text_encoder"}), "'text_encoder' entry"),
    "outputs_not_list": (_edit(lambda m: (m["model"].update(outputs="quadrant"), m)[1]), "outputs are not a list"),
    "token_id_string": (_edit(lambda m: (m["tokenizer"].update(cls_id="101"), m)[1]), "integer cls_id"),
    "manifest_list": (lambda p: _write_manifest(p, [1]), "manifest version None"),
    "manifest_v1": (_edit(lambda m: dict(m, manifest_version=1)), "manifest version 1"),
    "manifest_nested": (
        lambda p: (p / "onnx_export.json").write_text("[" * 50_000 + "]" * 50_000),
        "nested too deeply",
    ),
    "manifest_oversized": (_edit(lambda m: dict(m, pad="x" * (2 << 20))), "at most"),
    "manifest_nan": (lambda p: (p / "onnx_export.json").write_text('{"opset": NaN}'), "NaN is not a JSON number"),
    "manifest_fifo": (_fifo("onnx_export.json"), "not a regular file"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_damaged_export_is_refused_with_the_reason(exported_ckpt, tmp_path, case):
    path = _export_copy(exported_ckpt, tmp_path / "ck")
    damage, match = EXPORT_CASES[case]
    damage(path)
    t0 = time.perf_counter()
    why = _why(path)
    assert time.perf_counter() - t0 < 5.0
    import re

    assert re.search(match, why), why
    assert "mersdk export onnx" in why


def test_damaged_export_auto_falls_back_and_says_why(exported_ckpt, tmp_path):
    from mersdk import Recognizer, backends

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    _truncate(path / "model.onnx")
    choice = backends.choose("auto", "cpu", checkpoint=read_checkpoint(path))
    assert choice.name == "torch" and "model.onnx is damaged" in choice.reason
    with pytest.raises(BackendUnavailableError, match="model.onnx is damaged"):
        Recognizer(path, backend="onnx")
    rec = Recognizer(path, device="cpu")
    info = rec.info()
    assert info["backend"]["name"] == "torch"
    assert "model.onnx is damaged" in info["backends"]["onnx"]


def test_forged_export_with_matching_hashes_is_a_clear_error(exported_ckpt, tmp_path):
    """Garbage with a recomputed hash passes the manifest check; ONNX Runtime's refusal is then a
    BackendUnavailableError naming the file, not a raw protobuf error."""
    from mersdk import Recognizer

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    (path / "model.onnx").write_bytes(b"\x08\x07 not a graph" * 100)
    m = _manifest(path)
    m["model"]["sha256"] = sha256_file(path / "model.onnx")
    _write_manifest(path, m)
    with pytest.raises(BackendUnavailableError, match="cannot load .*model.onnx"):
        Recognizer(path, backend="onnx")


def test_export_symlink_inside_the_folder_is_allowed(exported_ckpt, tmp_path):
    from mersdk.export import find_export

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    os.replace(path / "tokenizer.json", path / "tok-real.json")
    os.symlink("tok-real.json", path / "tokenizer.json")
    exp, why = find_export(read_checkpoint(path))
    assert why is None and exp is not None


def _fake_stages(monkeypatch, fail_at: str | None = None, die=None):
    """Replace the slow exporter stages with ones that write small stand-in files (the real ones
    run in the session's ``exported_ckpt``); ``fail_at`` raises in that stage, as Ctrl-C would
    (``die``: calls it there instead). ``monkeypatch``: a pytest fixture, or anything with setattr."""
    from mersdk.export import onnx_export

    def model(ck, path, opset, verbose):
        if fail_at == "model" and die:
            path.write_bytes(b"partial")
            die()
        if fail_at == "model":
            path.write_bytes(b"partial")
            raise KeyboardInterrupt
        path.write_bytes(b"new model")
        return {
            "file": path.name,
            "sha256": sha256_file(path),
            "inputs": [],
            "outputs": ["quadrant", "va", "gate"],
            "check_max_abs_diff": 0.0,
        }

    class Tok:
        cls_token_id, sep_token_id, pad_token_id = 101, 102, 0

        class backend_tokenizer:
            @staticmethod
            def save(p):
                Path(p).write_text('{"new": 1}')

    def text(ck, path, opset, verbose):
        path.write_bytes(b"partial text encod")
        if fail_at == "text" and die:
            die()
        if fail_at == "text":
            raise RuntimeError("the exporter died")
        return {"file": path.name, "sha256": sha256_file(path), "check_max_abs_diff": 0.0}, Tok

    def weightless(full, path, cfg):
        path.write_bytes(b"weightless")
        entry = {"file": onnx_export.TEXT_WEIGHTLESS_ONNX, "sha256": sha256_file(path)}
        return dict(entry, weights={"file": "model.safetensors", "sha256": "0" * 64, "tensors": {}})

    monkeypatch.setattr(onnx_export, "export_model", model)
    monkeypatch.setattr(onnx_export, "export_text_encoder", text)
    monkeypatch.setattr(onnx_export, "weightless_text_encoder", weightless)
    return onnx_export


@pytest.mark.parametrize("fail_at", ["model", "text"])
def test_interrupted_re_export_leaves_the_previous_export_usable(exported_ckpt, tmp_path, monkeypatch, fail_at):
    from mersdk.export import find_export

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    onnx_export = _fake_stages(monkeypatch, fail_at)
    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        onnx_export.export_onnx(path, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before  # nothing changed, no temp file left
    _, why = find_export(read_checkpoint(path))
    assert why is None
    from mersdk import backends

    assert backends.choose("auto", "cpu", checkpoint=read_checkpoint(path)).name == "onnx"


def test_re_export_interrupted_while_committing_leaves_no_export(exported_ckpt, tmp_path, monkeypatch):
    from mersdk import backends

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    onnx_export = _fake_stages(monkeypatch)
    real_replace, calls = os.replace, []

    def dying_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # after model.onnx was replaced, before text_encoder.onnx
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_onnx(path, log=lambda *_: None)
    monkeypatch.setattr(os, "replace", real_replace)
    why = _why(path)
    assert "no ONNX export" in why  # clearly absent, never a manifest naming other files
    choice = backends.choose("auto", "cpu", checkpoint=read_checkpoint(path))
    assert choice.name == "torch" and "no ONNX export" in choice.reason
    assert not list(path.glob(".*.tmp"))


def test_re_export_writes_manifest_last_and_cleans_dead_temps(exported_ckpt, tmp_path, monkeypatch):
    from mersdk.export import MANIFEST, find_export

    path = _export_copy(exported_ckpt, tmp_path / "ck")
    dead = path / ".model.onnx.999999999-0123abcd.tmp"  # from a killed export (no such pid)
    dead.write_bytes(b"x")
    alive = path / f".model.onnx.{os.getpid()}-0123abcd.tmp"  # a running export's: kept
    alive.write_bytes(b"x")
    onnx_export = _fake_stages(monkeypatch)
    order = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (order.append(Path(d).name), real_replace(s, d))[1])
    onnx_export.export_onnx(path, log=lambda *_: None)
    assert order[-1] == MANIFEST
    assert set(order[:-1]) == {"model.onnx", "text_encoder.onnx", "text_encoder.weightless.onnx", "tokenizer.json"}
    assert not dead.exists() and alive.exists()
    exp, why = find_export(read_checkpoint(path))
    assert why is None and exp.model_path.read_bytes() == b"new model"
    assert not [p for p in path.glob(".*.tmp") if p != alive]


def test_damaged_cached_engine_is_not_trusted(tmp_path):
    import hashlib

    from mersdk.export.engine import _cached_engine_damage

    engine = tmp_path / "model-fp16-abc.engine"
    engine.write_bytes(b"engine bytes")
    assert "no usable sidecar" in _cached_engine_damage(engine)
    sidecar = engine.with_suffix(".json")
    sidecar.write_text(json.dumps({"engine_sha256": hashlib.sha256(b"engine bytes").hexdigest()}))
    assert _cached_engine_damage(engine) is None
    engine.write_bytes(b"engine by")  # truncated
    assert "damaged" in _cached_engine_damage(engine)
    sidecar.write_text(json.dumps({"target": "x"}))
    assert "older mersdk" in _cached_engine_damage(engine)


_KILLED_EXPORT = """
import os, signal, sys
sys.path.insert(0, sys.argv[3])
from test_tampered_checkpoints import _fake_stages

class Patch:
    setattr = staticmethod(setattr)

point = sys.argv[2]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # no finally block, no atexit: a real kill
onnx_export = _fake_stages(Patch, point if point in ("model", "text") else None, die)
real_replace, calls = os.replace, []
def replace(src, dst):
    calls.append(dst)
    if point == f"replace{len(calls)}":
        die()
    return real_replace(src, dst)
os.replace = replace
onnx_export.export_onnx(sys.argv[1], log=lambda *_: None)
"""


def test_killed_re_export_leaves_the_previous_export_or_none(exported_ckpt, tmp_path, monkeypatch):
    """SIGKILL at each stage of a re-export (the stages are stand-ins; the kill is real): afterwards
    the old export is intact or there is no manifest at all, ``auto`` picks accordingly, and the
    next export cleans the dead process's temporary files and works."""
    import signal
    import subprocess
    import sys

    from mersdk import backends
    from mersdk.export import MANIFEST, find_export

    tests_dir = str(Path(__file__).parent)
    for point in ("model", "text", "replace1", "replace2", "replace3", "replace4"):
        path = _export_copy(exported_ckpt, tmp_path / point)
        old_manifest = (path / MANIFEST).read_bytes()
        r = subprocess.run(
            [sys.executable, "-c", _KILLED_EXPORT, str(path), point, tests_dir],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
        ck = read_checkpoint(path)
        exp, why = find_export(ck)
        choice = backends.choose("auto", "cpu", checkpoint=ck)
        if point in ("model", "text"):  # killed before committing: the old export, untouched
            assert why is None and (path / MANIFEST).read_bytes() == old_manifest and choice.name == "onnx"
            assert list(path.glob(".*.tmp"))  # the dead process's partial files, for the next export
        else:  # killed while committing: clearly absent, never a manifest naming files it does not match
            assert "no ONNX export" in why and choice.name == "torch"
        onnx_export = _fake_stages(monkeypatch)
        onnx_export.export_onnx(path, log=lambda *_: None)
        exp, why = find_export(read_checkpoint(path))
        assert why is None and exp.model_path.read_bytes() == b"new model"
        assert not list(path.glob(".*.tmp"))
