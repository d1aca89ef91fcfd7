"""PyTorch backend: the reference inference path (CPU), the same EmotionModel training uses."""

from __future__ import annotations

import importlib.util

import numpy as np

from . import BackendSpec, register


def _probe(device: str) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (pip install 'mersdk[torch]', which pins torch==2.13.0)"
    if importlib.util.find_spec("transformers") is None:
        return "transformers is not installed"
    return None


class TorchBackend:
    name = "torch"

    def __init__(self, checkpoint, device: str = "cpu", num_threads: int | None = None):
        import torch

        from ..checkpoint import load_state_dict
        from ..model import EmotionModel
        from ..text_encoder import TextEncoder

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = device
        self.config = checkpoint.config
        self.model = EmotionModel(checkpoint.config)
        load_state_dict(checkpoint, self.model)
        self.model.to(device).eval()
        self.text_encoder = TextEncoder(checkpoint.config.text_encoder, device=device)
        self._torch = torch

    def encode_lyrics(self, texts: list[str | None]) -> list[np.ndarray | None]:
        """Per text: token embeddings (Tl, hidden) float32, or None when there are no lyrics."""
        emb, mask = self.text_encoder.encode(texts)
        out = []
        for i in range(len(texts)):
            n = int(mask[i].sum())
            out.append(emb[i, :n].float().cpu().numpy() if n else None)
        return out

    def forward(self, mel: np.ndarray, mel_lengths: np.ndarray, lyr_emb: np.ndarray, lyr_mask: np.ndarray):
        torch = self._torch
        d = self.device
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(mel).to(d), torch.from_numpy(mel_lengths).to(d),
                torch.from_numpy(lyr_emb).to(d), torch.from_numpy(lyr_mask).to(d),
            )
            res = {t.name: torch.softmax(out[t.name], dim=-1).float().cpu().numpy() for t in self.config.tasks}
            res["va"] = out["va"].float().cpu().numpy()
            res["gate"] = out["gate"].float().cpu().numpy()
        return res


register(BackendSpec(name="torch", devices=("cpu",), probe=_probe, create=TorchBackend))
