"""Tests of mersdk.training: metrics, noise mixing, derived VA targets, a tiny end-to-end training
run on a synthetic dataset folder, the ``mersdk evaluate --json`` contract, and (with the real data
present) that the bundled model's stored test macro-F1 is reproduced by ``evaluate``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

from conftest import DATA as REAL_DATA

from mersdk.training import metrics
from mersdk.training.data import QUADRANT_VA, mood_va_table
from mersdk.training.noise import make_noise, mix_at_snr


# ---- metrics ---------------------------------------------------------------------------------
def test_ccc_identical_is_one_and_bias_lowers_it():
    x = np.array([0.1, -0.4, 0.8, 0.3, -0.9])
    assert metrics.ccc(x, x) == pytest.approx(1.0)
    assert metrics.pearson(x, x + 0.5) == pytest.approx(1.0)
    # shifted: Pearson stays 1, CCC drops by the mean difference: 2 var / (2 var + d^2)
    v = x.var()
    assert metrics.ccc(x, x + 0.5) == pytest.approx(2 * v / (2 * v + 0.25))
    assert metrics.ccc(x, -x) == pytest.approx(-2 * v / (2 * v + (2 * x.mean()) ** 2))


def test_icc_3_1_matches_shrout_fleiss_table():
    # Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(3,1) = 0.71
    r = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert metrics.icc_3_1(r) == pytest.approx(0.7148, abs=1e-3)
    x = np.array([1.0, 2.0, 3.0, 5.0])
    assert metrics.icc_3_1(np.stack([x, x], 1)) == pytest.approx(1.0)
    # consistency ICC ignores a constant offset between raters
    assert metrics.icc_3_1(np.stack([x, x + 3], 1)) == pytest.approx(1.0)


def test_classification_metrics_small_case():
    y = [0, 1, 2, 2]
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    m = metrics.classification_metrics(y, probs, 3)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_bootstrap_ci_perfect_and_binomial_width():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    perfect = np.eye(3)[y] * 0.9 + 0.1 / 3
    ci = metrics.bootstrap_ci(y, perfect, 3, n_resamples=200)
    assert ci["accuracy"] == [1.0, 1.0] and ci["macro_f1"] == [1.0, 1.0] and ci["roc_auc"] == [1.0, 1.0]
    # 70 % right: the accuracy interval must match the binomial one, 0.7 +- 1.96 * sqrt(0.21 / 400)
    right = rng.random(400) < 0.7
    pred = np.where(right, y, (y + 1) % 3)
    probs = np.eye(3)[pred] * 0.6 + 0.4 / 3
    acc = right.mean()
    ci = metrics.bootstrap_ci(y, probs, 3, n_resamples=2000, seed=1)
    lo, hi = ci["accuracy"]
    half = 1.96 * np.sqrt(acc * (1 - acc) / 400)
    assert lo < acc < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert ci["macro_f1"][0] < metrics.classification_metrics(y, probs, 3)["macro_f1"] < ci["macro_f1"][1]
    # seeded: the same call gives the same interval; another seed moves it a little
    assert metrics.bootstrap_ci(y, probs, 3, n_resamples=2000, seed=1) == ci
    assert metrics.bootstrap_ci(y, probs, 3, n_resamples=2000, seed=2)["accuracy"] != ci["accuracy"]


# ---- noise -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["white", "pink", "music"])
@pytest.mark.parametrize("snr", [20.0, 5.0, 0.0, -3.0])
def test_mix_at_snr_hits_the_requested_snr(kind, snr):
    rng = np.random.default_rng(0)
    sig = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32) * 0.3
    pool = [rng.standard_normal(7000).astype(np.float32) * 0.05]
    noise = make_noise(kind, len(sig), rng, pool)
    mix = mix_at_snr(sig, noise, snr)
    added = mix.astype(np.float64) - sig
    got = 10 * np.log10(np.mean(sig.astype(np.float64) ** 2) / np.mean(added**2))
    assert got == pytest.approx(snr, abs=0.01)


def test_pink_noise_has_falling_spectrum():
    x = make_noise("pink", 1 << 16, np.random.default_rng(1))
    p = np.abs(np.fft.rfft(x)) ** 2
    low, high = p[10:100].mean(), p[10000:20000].mean()
    assert low > 50 * high  # 1/f: about 200x between these bands


# ---- derived VA targets --------------------------------------------------------------------------
def test_derived_va_mapping():
    assert QUADRANT_VA == {"Q1": (0.5, 0.5), "Q2": (-0.5, 0.5), "Q3": (-0.5, -0.5), "Q4": (0.5, -0.5)}
    lex = {"cheerful": (8.0, 5.76), "silly": (6.72, 4.86), "tense": (2.75, 5.32), "anxious": (3.8, 6.2)}
    t = mood_va_table({"Cheerful": 2, "Silly": 4, "Campy": 4, "Tense - Anxious": 5}, lex)
    assert t["Cheerful"] == pytest.approx(((8.0 - 5) / 4, (5.76 - 5) / 4))
    assert t["Campy"] == pytest.approx(t["Silly"])  # not in the norms: mean of its cluster's covered moods
    assert t["Tense - Anxious"] == pytest.approx((((2.75 + 3.8) / 2 - 5) / 4, ((5.32 + 6.2) / 2 - 5) / 4))
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in t.values())


# ---- a synthetic dataset folder in the real layout -------------------------------------------------
def _write_dataset(root: Path) -> Path:
    import soundfile as sf

    sr = 16000
    rng = np.random.default_rng(0)
    (root / "lexicon").mkdir(parents=True)
    with open(root / "lexicon" / "Ratings_Warriner_et_al.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "Word", "V.Mean.Sum", "A.Mean.Sum"])
        for i, (word, v, a) in enumerate(
            [
                ("passionate", 7.2, 6.3),
                ("cheerful", 8.0, 5.8),
                ("poignant", 5.1, 4.1),
                ("humorous", 7.8, 5.3),
                ("aggressive", 3.1, 5.9),
            ]
        ):
            w.writerow([i, word, v, a])
    moods = ["Passionate", "Cheerful", "Poignant", "Humorous", "Aggressive"]

    def tone(label, n_classes):  # a class-dependent pitch in noise: learnable in a few steps
        t = np.arange(int(sr * 3.0)) / sr
        f0 = 200 * 2 ** (label * 4 / n_classes)
        return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)

    for ds, n_classes in (("mirex_mm", 5), ("quadrants_4q", 4)):
        d = root / ds
        (d / "audio").mkdir(parents=True)
        rows, splits = [], []
        for k in range(n_classes * 4):
            label = k % n_classes
            split = ("train", "train", "val", "test")[k // n_classes]
            cid = f"{k:03d}" if ds == "mirex_mm" else f"MT{k:010d}"
            sf.write(d / "audio" / f"{cid}.wav", tone(label, n_classes), sr)
            splits.append([cid, k // n_classes, split])
            if ds == "mirex_mm":
                has = k % 3 != 0
                if has:
                    (d / "lyrics").mkdir(exist_ok=True)
                    (d / "lyrics" / f"{cid}.txt").write_text(f"a song about {moods[label].lower()} things\n")
                rows.append([cid, label + 1, moods[label], int(has), f"artist{k}", "t", "a", 2000])
            else:
                rows.append([cid, f"Q{label + 1}", f"artist{k}", "t", "m", "g"])
        with open(d / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["id", "cluster", "mood", "has_lyrics", "artist", "title", "album", "year"]
                if ds == "mirex_mm"
                else ["id", "quadrant", "artist", "title", "moods", "genres"]
            )
            w.writerows(rows)
        with open(d / "splits.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "fold", "split"])
            w.writerows(splits)
    return root


TINY_MODEL = {
    "cnn_stages": [[4, 2, 2], [8, 2, 2]],
    "d_model": 32,
    "n_heads": 2,
    "n_layers": 1,
    "ffn_dim": 64,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from mersdk.training.cache import build_cache

    tmp = tmp_path_factory.mktemp("tiny")
    data = _write_dataset(tmp / "data")
    build_cache(data, tmp / "cache", workers=1)
    return tmp, data


@pytest.fixture(scope="module")
def tiny_run(tiny_data):
    from mersdk.training.train import TrainOptions, train

    tmp, data = tiny_data
    opts = TrainOptions(epochs=4, batch_size=8, lr=3e-3, crop_s=(2.0, 2.5), noise_prob=0.0, threads=1, model=TINY_MODEL)
    logs: list[str] = []
    train(opts, data, tmp / "cache", tmp / "run", log=logs.append)
    return data, tmp / "run"


def test_resumed_run_equals_uninterrupted_run(tiny_data):
    """Seeded and resumable: stopping after epoch 0 and resuming gives bit-identical weights."""
    import torch

    from mersdk.training.train import TrainOptions, train

    tmp, data = tiny_data
    opts = TrainOptions(
        epochs=2,
        batch_size=8,
        crop_s=(2.0, 2.5),
        threads=1,
        model=TINY_MODEL,
        label_fraction=0.5,
        semi_supervised="mean_teacher",
    )
    train(opts, data, tmp / "cache", tmp / "straight", log=lambda *_: None)
    train(opts, data, tmp / "cache", tmp / "resumed", log=lambda *_: None, stop_after_epoch=0)
    assert json.loads((tmp / "resumed" / "history.json").read_text())["history"][-1]["epoch"] == 0
    train(opts, data, tmp / "cache", tmp / "resumed", log=lambda *_: None)
    a = torch.load(tmp / "straight" / "state.pt", weights_only=False)
    b = torch.load(tmp / "resumed" / "state.pt", weights_only=False)
    for key in ("model", "teacher"):
        for name, t in a[key].items():
            assert torch.equal(t, b[key][name]), f"{key}.{name} differs after resuming"


def test_tiny_training_decreases_loss_and_writes_a_loadable_checkpoint(tiny_run):
    import mersdk
    from mersdk.checkpoint import read_checkpoint

    data, run = tiny_run
    hist = json.loads((run / "history.json").read_text())["history"]
    assert len(hist) == 4
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert (run / "state.pt").is_file() and (run / "log.csv").is_file()
    ck = read_checkpoint(run / "best")
    assert ck.metadata["trained"] is True and ck.metadata["selected_on"].startswith("val")
    rec = mersdk.Recognizer(model=run / "best")
    p = rec.predict(np.zeros(16000 * 2, np.float32) + 0.01, sample_rate=16000)
    assert p.label in rec.labels


def test_evaluate_json_keys(tiny_run, capsys):
    from mersdk.cli import main

    data, run = tiny_run
    for ds in ("mirex_mm", "quadrants_4q"):
        assert (
            main(
                [
                    "evaluate",
                    "--data",
                    str(data),
                    "--dataset",
                    ds,
                    "--split",
                    "test",
                    "--checkpoint",
                    str(run / "best"),
                    "--json",
                ]
            )
            == 0
        )
        res = json.loads(capsys.readouterr().out)
        for key in ("accuracy", "macro_f1", "roc_auc", "n", "model", "confusion_matrix", "va"):
            assert key in res
        assert res["n"] == (5 if ds == "mirex_mm" else 4)
        assert set(res["va"]["valence"]) == {"ccc", "pearson", "icc_3_1"}
        lo, hi = res["ci95"]["accuracy"]
        assert res["ci95"]["level"] == 0.95 and 0 <= lo <= res["accuracy"] <= hi <= 1
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(data),
                "--dataset",
                "quadrants_4q",
                "--checkpoint",
                str(run / "best"),
                "--snr",
                "0",
                "--noise",
                "pink",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["snr_db"] == 0.0


def test_frozen_musicnn_heads_train_from_the_token_cache(tiny_data):
    """Token cache -> frozen-backbone training -> a checkpoint whose full forward (log-mel in) gives
    what the cached tokens gave, with the pretrained backbone unchanged."""
    import torch
    from safetensors.torch import load_file

    import mersdk
    from mersdk.config import MUSICNN_FRONTEND, ModelConfig
    from mersdk.model import PRETRAINED_DIR
    from mersdk.training.baselines import load_model
    from mersdk.training.cache import FeatureCache, build_cache, build_token_cache
    from mersdk.training.data import DATASETS, load_clips
    from mersdk.training.train import TrainOptions, predict_cached, train

    tmp, data = tiny_data
    build_cache(data, tmp / "mcache", workers=1, cfg=ModelConfig(frontend=MUSICNN_FRONTEND))
    build_token_cache(tmp / "mcache", log=lambda *_: None, max_patches=5)
    opts = TrainOptions(
        preset="musicnn_gate",
        epochs=2,
        batch_size=8,
        lr=3e-3,
        crop_s=(3.0, 3.0),
        threads=1,
        model={"d_model": 32, "n_heads": 2, "n_layers": 1, "ffn_dim": 64},
    )
    train(opts, data, tmp / "mcache", tmp / "mrun", log=lambda *_: None)
    model, kind, cfg, _, _ = load_model(tmp / "mrun" / "best")
    assert cfg.audio_encoder == "musicnn_msd"
    pretrained = load_file(str(PRETRAINED_DIR / "MSD_musicnn.safetensors"))
    for k, v in model.audio.backbone.state_dict().items():
        if not k.endswith("num_batches_tracked"):  # a counter, unused by frozen (eval-mode) batch norms
            assert torch.equal(v, pretrained[k]), f"backbone {k} changed during frozen training"
    clips = {ds: [c for c in load_clips(data, ds) if c.split == "test"] for ds in DATASETS}
    cached = predict_cached(model, clips, FeatureCache(tmp / "mcache", DATASETS, tokens="musicnn_msd"), cfg)
    rec = mersdk.Recognizer(model=tmp / "mrun" / "best", backend="torch")
    import soundfile as sf

    c = clips["quadrants_4q"][0]
    y, sr = sf.read(c.audio_path, dtype="float32")
    p = rec.predict(y, sample_rate=sr)
    probs = np.array([p.probabilities[label] for label in rec.labels])
    assert np.allclose(probs, cached["quadrants_4q"][1]["quadrant"][0], atol=2e-3)


# ---- the bundled model on the real data ---------------------------------------------------------
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(not (REAL_DATA / "mirex_mm").is_dir(), reason="needs the real data in ../shared/data (absent)")
def test_bundled_model_test_f1_is_reproduced():
    from mersdk.checkpoint import read_checkpoint
    from mersdk.training.evaluate import evaluate_checkpoint

    meta = read_checkpoint(None).metadata
    if not meta.get("trained"):
        pytest.skip("the bundled model is the untrained placeholder")
    for ds, stored in meta["test"].items():
        res = evaluate_checkpoint(None, REAL_DATA, ds, "test")
        assert res["n"] == stored["n"]
        assert res["macro_f1"] == pytest.approx(stored["macro_f1"], abs=0.01)
        for k in ("accuracy", "macro_f1", "roc_auc"):  # 181 clips: intervals some points wide, not 0, not 0.5
            lo, hi = res["ci95"][k]
            assert lo < res[k] < hi and 0.02 < hi - lo < 0.3
