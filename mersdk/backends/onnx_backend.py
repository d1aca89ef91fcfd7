"""ONNX Runtime backend (CPU): the exported graphs, no PyTorch anywhere.

Lyrics are tokenized with the ``tokenizers`` library from the export's ``tokenizer.json`` and cut
into windows exactly as the PyTorch backend does (``text_encoder.split_windows``); both graphs run
in ONNX Runtime sessions. The export is made once per checkpoint with ``mersdk export onnx`` and
must come from the checkpoint's current weights (see ``mersdk.export``).

Options (``Recognizer(backend_options=...)``): ``intra_op_threads`` (default: ``num_threads``, else
ONNX Runtime's choice, one per physical core), ``inter_op_threads``, ``graph_optimization_level``
("disable" | "basic" | "extended" | "all", default "all"), ``allow_spinning`` (default False: ORT's
spin-waiting threads of one session steal the cores from the other). The export is read from the checkpoint
folder (``mersdk export onnx --checkpoint DIR`` writes it there).
"""

from __future__ import annotations

import importlib.util
import threading

import numpy as np

from ..errors import BackendUnavailableError
from ..export import MODEL_INPUTS, TEXT_INPUTS, TEXT_OUTPUT, export_hint, find_export, probe_export
from ..text_encoder import split_windows
from .base import BackendSpec, register

_LEVELS = ("disable", "basic", "extended", "all")


def _probe(device: str) -> str | None:
    missing = [p for p in ("onnxruntime", "tokenizers") if importlib.util.find_spec(p) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'mersdk[onnx]')"
    return None


def session_options(intra_op_threads=None, inter_op_threads=None, graph_optimization_level="all",
                    allow_spinning: bool = False):
    import onnxruntime as ort

    if graph_optimization_level not in _LEVELS:
        raise ValueError(f"graph_optimization_level must be one of {_LEVELS}, not {graph_optimization_level!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_optimization_level]
    if intra_op_threads:
        so.intra_op_num_threads = int(intra_op_threads)
    if inter_op_threads:
        so.inter_op_num_threads = int(inter_op_threads)
    so.log_severity_level = 3  # warnings about unused initialisers are not the user's business
    # Two sessions (text encoder, model) run one after the other: with ORT's default spin-waiting,
    # the idle session's threads keep spinning and steal the cores from the busy one (measured on
    # 2 cores: a 30 s call with lyrics 60 ms with spinning, 34 ms without)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if allow_spinning else "0")
    return so


def load_session(path, so):
    """An ORT CPU session; a file that passed the manifest's hash check but that ONNX Runtime cannot
    load (a forged export) is a BackendUnavailableError naming it, not a raw protobuf error."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types (Fail, InvalidProtobuf, ...)
        raise BackendUnavailableError(f"backend 'onnx' cannot load {path}: {str(e)[:300]}; "
                                      f"{export_hint(path.parent)}") from e
def graph_kernels(name: str) -> dict[str, str]:
    """``Backend.kernels`` of a graph runtime: the log-mel is ours (CPU), the attention is in the graph."""
    from ..ops import describe

    return {"log_mel": describe("cpu")["log_mel"], "attention": f"inside the {name} graph"}


class OnnxTextEncoder:
    """tokenizers + the text-encoder graph: texts -> per-text token embeddings (or None).

    ``run(input_ids, attention_mask) -> last_hidden_state`` executes the graph: an ONNX Runtime
    session by default (``so`` its options), created on the first lyrics it sees (the 91 MB text
    encoder costs ~0.3 s and ~90 MB RSS that audio-only use never needs); the TensorRT backend
    passes its engine instead."""

    def __init__(self, export, cfg, so=None, run=None):
        from tokenizers import Tokenizer

        tok = export.manifest["tokenizer"]
        self.tokenizer = Tokenizer.from_file(str(export.tokenizer_path))
        self.tokenizer.no_truncation()  # windows do the cutting, never the tokenizer
        self.tokenizer.no_padding()
        self.cls, self.sep, self.pad = tok["cls_id"], tok["sep_id"], tok["pad_id"]
        self.max_tokens = cfg.max_tokens
        self._path, self._so, self._run = export.text_encoder_path, so, run
        self._lock = threading.Lock()  # one lazy session, even when threads share the backend

    def run(self, ids: np.ndarray, att: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._run is None:
                session = load_session(self._path, self._so)
                self._run = lambda i, a: session.run([TEXT_OUTPUT], dict(zip(TEXT_INPUTS, (i, a))))[0]
            run = self._run
        return run(ids, att)

    def token_windows(self, text: str) -> list[list[int]]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return split_windows(ids, self.max_tokens, self.cls, self.sep)

    def encode(self, texts: list[str | None]) -> list[np.ndarray | None]:
        per_text = [self.token_windows(t) if t else [] for t in texts]
        flat = [w for ws in per_text for w in ws]
        if not flat:
            return [None] * len(texts)
        width = max(len(w) for w in flat)
        ids = np.full((len(flat), width), self.pad, np.int64)
        att = np.zeros((len(flat), width), np.int64)
        for i, w in enumerate(flat):
            ids[i, : len(w)] = w
            att[i, : len(w)] = 1
        h = self.run(ids, att)
        out, k = [], 0
        for ws in per_text:
            if not ws:
                out.append(None)
                continue
            out.append(np.concatenate([h[k + j, : len(w)] for j, w in enumerate(ws)], axis=0))
            k += len(ws)
        return out


class OnnxBackend:
    """``base.Backend`` on ONNX Runtime. Thread-safe: ``InferenceSession.run`` may be called
    concurrently, and the tokenizer is only read."""

    name = "onnx"

    def __init__(self, checkpoint, device: str = "cpu", num_threads: int | None = None, *,
                 intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 graph_optimization_level: str = "all", allow_spinning: bool = False):
        export, why = find_export(checkpoint)
        if export is None:
            raise BackendUnavailableError(f"backend 'onnx' cannot run here: {why}")
        self.export = export
        self.config = checkpoint.config
        so = session_options(intra_op_threads or num_threads, inter_op_threads, graph_optimization_level, allow_spinning)
        self.session = load_session(export.model_path, so)
        self.outputs = export.outputs
        self.text_encoder = OnnxTextEncoder(export, checkpoint.config.text_encoder, so)

    def log_mel(self, windows):
        from ..ops import log_mel_batch_fast

        return log_mel_batch_fast(list(windows), self.config.frontend)

    def kernels(self) -> dict[str, str]:
        return graph_kernels(self.name)

    def close(self) -> None:
        self.session = None  # ONNX Runtime frees a session with its last reference

    def encode_lyrics(self, texts: list[str | None]) -> list[np.ndarray | None]:
        return self.text_encoder.encode(texts)

    def forward(self, mel: np.ndarray, mel_lengths: np.ndarray, lyr_emb: np.ndarray, lyr_mask: np.ndarray):
        if self.session is None:
            raise BackendUnavailableError("this Recognizer was closed")
        feeds = dict(zip(MODEL_INPUTS, (mel, mel_lengths.astype(np.int64, copy=False), lyr_emb, lyr_mask)))
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


register(BackendSpec(name="onnx", devices=("cpu",), probe=_probe, create=OnnxBackend,
                     probe_checkpoint=probe_export))
