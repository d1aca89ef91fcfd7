"""ONNX Runtime backend (CPU): the exported graphs, no PyTorch anywhere.

Lyrics are tokenized with the ``tokenizers`` library from the export's ``tokenizer.json`` (or the
text-encoder package's own) and cut into encoder inputs exactly as the PyTorch backend does
(``text_encoder.LyricEncoder``); both graphs run in ONNX Runtime sessions. The text encoder is either
a full graph (``text_encoder.onnx``, 91 MB, made on the machine) or the weightless graph shipped in
the package, whose initializers are filled at load time from the text-encoder package's
``model.safetensors`` (``safetensors.numpy`` + ONNX Runtime external initializers): nothing large is
stored twice and no PyTorch is needed. The export is made once per checkpoint with ``mersdk export onnx`` and
must come from the checkpoint's current weights (see ``mersdk.export``).

Options (``Recognizer(backend_options=...)``): ``intra_op_threads`` (default: ``num_threads``, else
``backends.default_num_threads()``: half the cores, so a player beside it keeps the rest),
``inter_op_threads``, ``graph_optimization_level``
("disable" | "basic" | "extended" | "all", default "all"), ``allow_spinning`` (default False: ORT's
spin-waiting threads of one session steal the cores from the other). The export is read from the checkpoint
folder (``mersdk export onnx --checkpoint DIR`` writes it there; the bundled model ships its own).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, CheckpointError
from ..export import MODEL_INPUTS, TEXT_INPUTS, TEXT_OUTPUT, TEXT_WEIGHTLESS, export_hint, find_export, probe_export
from ..text_encoder import LyricEncoder, resolve_source
from .base import BackendSpec, default_num_threads, register

_LEVELS = ("disable", "basic", "extended", "all")


def _probe(device: str) -> str | None:
    missing = [p for p in ("onnxruntime", "tokenizers") if importlib.util.find_spec(p) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install 'mersdk[onnx]')"
    return None


def session_options(
    intra_op_threads=None, inter_op_threads=None, graph_optimization_level="all", allow_spinning: bool = False
):
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
        raise BackendUnavailableError(
            f"backend 'onnx' cannot load {path}: {str(e)[:300]}; {export_hint(Path(path).parent)}"
        ) from e


def graph_kernels(name: str) -> dict[str, str]:
    """``Backend.kernels`` of a graph runtime: the log-mel is ours (CPU), the attention is in the graph."""
    from ..ops import describe

    return {"log_mel": describe("cpu")["log_mel"], "attention": f"inside the {name} graph"}


def load_weightless(entry: dict, source: str, so):
    """Attach the text-encoder weights named by a weightless graph's manifest ``entry`` to the
    session options ``so``, read from ``model.safetensors`` of the text-encoder ``source``. Returns the
    arrays, which must outlive the session (ONNX Runtime uses their memory)."""
    import onnxruntime as ort
    from safetensors import safe_open

    weights = entry["weights"]
    path = os.path.join(resolve_source(source), weights["file"])
    names, values, arrays = [], [], []
    with safe_open(path, framework="np") as f:
        keys = set(f.keys())
        for name, (key, transposed, shape) in weights["tensors"].items():
            if key not in keys:
                raise CheckpointError(f"{path} has no tensor {key!r}; the weightless text encoder needs it")
            a = f.get_tensor(key)
            if transposed:
                a = np.ascontiguousarray(a.T)
            if list(a.shape) != list(shape) or a.dtype != np.float32:
                raise CheckpointError(
                    f"{path}: tensor {key!r} is {a.dtype} {list(a.shape)}, "
                    f"the text encoder graph expects float32 {list(shape)}"
                )
            arrays.append(a)
            names.append(name)
            values.append(ort.OrtValue.ortvalue_from_numpy(a))
    so.add_external_initializers(names, values)
    return arrays


class OnnxTextEncoder(LyricEncoder):
    """tokenizers + the text-encoder graph: texts -> per-text token embeddings (or None).

    ``run(input_ids, attention_mask) -> last_hidden_state`` executes the graph: an ONNX Runtime
    session by default (``session_options()`` makes its options), created on the first lyrics it
    sees (the 91 MB text encoder costs ~0.3 s and ~90 MB RSS that audio-only use never needs); the
    TensorRT backend passes its engine instead."""

    def __init__(self, export, cfg, session_options=None, run=None):
        tok = export.manifest["tokenizer"]
        self.cls, self.sep, self.pad = tok["cls_id"], tok["sep_id"], tok["pad_id"]
        self.cfg = cfg
        self._export, self._session_options, self._run = export, session_options, run
        self._tokenizer = None
        self._weights: list[np.ndarray] = []
        self._lock = threading.Lock()  # one lazy tokenizer and session, even when threads share the backend

    @property
    def tokenizer(self):
        """Loaded on first use: audio-only use needs neither it nor the text-encoder package."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                path = self._export.tokenizer_path
                if not path.is_file():  # the shipped export reads the text-encoder package's own
                    path = Path(resolve_source(self.cfg.source)) / self._export.manifest["tokenizer"]["file"]
                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_truncation()  # the LyricEncoder does the cutting, never the tokenizer
                tokenizer.no_padding()
                self._tokenizer = tokenizer
            return self._tokenizer

    def tokenize_many(self, texts) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def _session(self):
        import onnxruntime as ort

        so = self._session_options() if self._session_options else None
        if not self._export.weightless:
            return load_session(self._export.text_encoder_path, so)
        entry = self._export.manifest[TEXT_WEIGHTLESS]
        so = so or ort.SessionOptions()
        self._weights = load_weightless(entry, self.cfg.source, so)
        return load_session(self._export.folder / entry["file"], so)

    def run(self, ids: np.ndarray, att: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._run is None:
                session = self._session()
                self._run = lambda i, a: session.run([TEXT_OUTPUT], dict(zip(TEXT_INPUTS, (i, a))))[0]
            run = self._run
        return run(ids, att)

    def encode(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        return self.encode_arrays(texts)


class OnnxBackend:
    """``base.Backend`` on ONNX Runtime. Thread-safe: ``InferenceSession.run`` may be called
    concurrently; the lazy tokenizer and text-encoder session are created under a lock."""

    name = "onnx"

    def __init__(
        self,
        checkpoint,
        device: str = "cpu",
        num_threads: int | None = None,
        *,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization_level: str = "all",
        allow_spinning: bool = False,
    ):
        export, why = find_export(checkpoint)
        if export is None:
            raise BackendUnavailableError(f"backend 'onnx' cannot run here: {why}")
        self.export = export
        self.config = checkpoint.config
        self.threads = threads = intra_op_threads or num_threads or default_num_threads()
        options = functools.partial(
            session_options, threads, inter_op_threads, graph_optimization_level, allow_spinning
        )
        self.session = load_session(export.model_path, options())
        self.outputs = export.outputs
        self.text_encoder = OnnxTextEncoder(export, checkpoint.config.text_encoder, options)

    def log_mel(self, windows):
        from ..ops import log_mel_batch_fast

        return log_mel_batch_fast(list(windows), self.config.frontend)

    def kernels(self) -> dict[str, str]:
        return graph_kernels(self.name)

    def close(self) -> None:
        self.session = None  # ONNX Runtime frees a session with its last reference

    def encode_lyrics(self, texts: Sequence[str | None]) -> list[np.ndarray | None]:
        return self.text_encoder.encode(texts)

    def forward(self, mel: np.ndarray, mel_lengths: np.ndarray, lyr_emb: np.ndarray, lyr_mask: np.ndarray):
        if self.session is None:
            raise BackendUnavailableError("this Recognizer was closed")
        feeds = dict(zip(MODEL_INPUTS, (mel, mel_lengths.astype(np.int64, copy=False), lyr_emb, lyr_mask)))
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


register(BackendSpec(name="onnx", devices=("cpu",), probe=_probe, create=OnnxBackend, probe_checkpoint=probe_export))
