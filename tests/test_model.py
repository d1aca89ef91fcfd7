"""The network: shapes, masks and padding invariance, the reference attention."""

import json

import pytest
import torch

from mersdk.config import ModelConfig
from mersdk.model import EmotionModel, masked_attention

TOL = 1e-5  # float32, different blocking of the same sums


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return EmotionModel(ModelConfig()).eval()


def run(model, mel, lengths, emb, mask):
    with torch.inference_mode():
        return model(mel, torch.as_tensor(lengths), emb, mask)


def test_output_shapes_and_ranges(model):
    out = run(
        model, torch.randn(3, 64, 700), [700, 400, 26], torch.randn(3, 9, 384), torch.ones(3, 9, dtype=torch.bool)
    )
    assert out["quadrant"].shape == (3, 4) and out["cluster"].shape == (3, 5)
    assert out["va"].shape == (3, 2) and out["va"].abs().max() <= 1
    assert out["gate"].shape == (3,) and ((out["gate"] >= 0) & (out["gate"] <= 1)).all()


def test_padded_batch_equals_unpadded(model):
    torch.manual_seed(1)
    mel_a, emb_a = torch.randn(1, 64, 333), torch.randn(1, 17, 384)
    one = run(model, mel_a, [333], emb_a, torch.ones(1, 17, dtype=torch.bool))
    mel = torch.randn(2, 64, 900)  # garbage beyond 333 must not matter: lengths mask it
    mel[0, :, :333] = mel_a[0]
    emb = torch.randn(2, 40, 384)
    emb[0, :17] = emb_a[0]
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[0, 17:] = False
    both = run(model, mel, [333, 900], emb, mask)
    for k in ("quadrant", "cluster", "va", "gate"):
        torch.testing.assert_close(both[k][0], one[k][0], atol=TOL, rtol=0)


def test_absent_lyrics_zero_gate_and_padding_free(model):
    mel = torch.randn(1, 64, 500)
    a = run(model, mel, [500], torch.zeros(1, 1, 384), torch.zeros(1, 1, dtype=torch.bool))
    b = run(model, mel, [500], torch.randn(1, 30, 384), torch.zeros(1, 30, dtype=torch.bool))
    assert a["gate"].item() == 0.0
    torch.testing.assert_close(a["quadrant"], b["quadrant"], atol=TOL, rtol=0)
    with_lyrics = run(model, mel, [500], torch.randn(1, 30, 384), torch.ones(1, 30, dtype=torch.bool))
    assert with_lyrics["gate"].item() > 0.0
    assert not torch.allclose(with_lyrics["quadrant"], a["quadrant"])


def test_masked_attention_matches_sdpa_and_zeroes_empty_rows():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 5, 16), torch.randn(3, 2, 7, 16), torch.randn(3, 2, 7, 16)
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [0] * 7], dtype=torch.bool)
    out = masked_attention(q, k, v, mask)
    for b in range(2):
        want = torch.nn.functional.scaled_dot_product_attention(
            q[b : b + 1], k[b : b + 1], v[b : b + 1], attn_mask=mask[b : b + 1, None, None, :]
        )
        torch.testing.assert_close(out[b : b + 1], want, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all() and (out[2] == 0).all()


def test_config_json_round_trip():
    cfg = ModelConfig(d_model=128, n_heads=2)
    again = ModelConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def test_gradients_flow_through_all_parts():
    torch.manual_seed(0)
    m = EmotionModel(ModelConfig()).train()
    out = m(
        torch.randn(2, 64, 300), torch.tensor([300, 200]), torch.randn(2, 8, 384), torch.ones(2, 8, dtype=torch.bool)
    )
    (out["quadrant"].sum() + out["cluster"].sum() + out["va"].sum()).backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not no_grad, no_grad
