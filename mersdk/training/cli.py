"""``mersdk train`` (``mersdk train cache ...`` builds the feature cache) and ``mersdk evaluate``."""

from __future__ import annotations

import json


def cmd_train(args) -> int:
    from .data import DATASETS, default_data_dir

    data = args.data or default_data_dir()
    if args.action == "cache":
        from ..config import ModelConfig
        from .cache import build_cache

        cfg: ModelConfig | None = None
        if args.preset:  # the front end of that preset's model (musicnn_* need musicnn's)
            from .train import TrainOptions

            cfg = TrainOptions(preset=args.preset).model_config()[1]
        build_cache(
            data,
            args.out or "cache",
            datasets=args.datasets or DATASETS,
            workers=args.workers,
            cfg=cfg or ModelConfig(),
        )
        return 0
    if args.action == "cache-tokens":
        from .cache import build_token_cache

        build_token_cache(args.cache, datasets=args.datasets or DATASETS, max_patches=args.max_patches)
        return 0
    from .train import TrainOptions, train

    opts = TrainOptions.from_file(args.config) if args.config else TrainOptions()
    if not args.out:
        raise SystemExit("mersdk train: --out RUN_FOLDER is required (e.g. runs/gate)")
    overrides = {
        k: getattr(args, k)
        for k in ("preset", "epochs", "seed", "label_fraction", "semi_supervised")
        if getattr(args, k) is not None
    }
    if args.datasets:
        overrides["datasets"] = tuple(args.datasets)
    opts = opts.replace(**overrides)
    train(opts, data_dir=data, cache_dir=args.cache, out_dir=args.out, resume=not args.no_resume, log=print)
    return 0


def cmd_evaluate(args) -> int:
    from .data import default_data_dir
    from .evaluate import evaluate_checkpoint, format_report

    res = evaluate_checkpoint(
        args.checkpoint,
        args.data or default_data_dir(),
        args.dataset,
        args.split,
        snr_db=args.snr,
        noise=args.noise,
        seed=args.seed,
        lyrics=not args.no_lyrics,
        bootstrap=args.bootstrap,
    )
    print(json.dumps(res) if args.json else format_report(res))
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (or `train cache` to build the feature cache)")
    p.add_argument(
        "action",
        nargs="?",
        choices=["cache", "cache-tokens"],
        help="`cache`: decode audio and encode lyrics once; `cache-tokens`: run the frozen "
        "pretrained audio encoder over a cache made with --preset musicnn_gate",
    )
    p.add_argument("--data", help="data folder (default: $MERSDK_DATA or ../shared/data)")
    p.add_argument("--cache", default="cache", help="feature cache folder (default: cache)")
    p.add_argument("--out", help="run folder (train) or cache folder (train cache)")
    p.add_argument("--config", help="JSON file of TrainOptions (model config under 'model')")
    p.add_argument("--datasets", nargs="+", choices=["mirex_mm", "quadrants_4q"])
    p.add_argument(
        "--preset",
        choices=["gate", "sum", "transformer", "cnn", "crnn", "lyrics", "musicnn_gate", "musicnn_sum", "musicnn_audio"],
        help="model: ours with gate/sum fusion or a baseline (see train.MODEL_PRESETS); with "
        "`cache`: the preset whose front end to cache",
    )
    p.add_argument("--semi-supervised", dest="semi_supervised", choices=["none", "mean_teacher"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--label-fraction", dest="label_fraction", type=float)
    p.add_argument("--workers", type=int, help="decoding processes for `train cache` (default: 2)")
    p.add_argument(
        "--max-patches",
        dest="max_patches",
        type=int,
        help="`cache-tokens`: only this many central 3 s patches per clip, as a model with that "
        "max_patches runs (default: all)",
    )
    p.add_argument("--no-resume", action="store_true", help="start over even if the run folder has a saved state")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a dataset split (whole clips, like the Recognizer)")
    p.add_argument("--data", help="data folder (default: $MERSDK_DATA or ../shared/data)")
    p.add_argument("--dataset", required=True, choices=["mirex_mm", "quadrants_4q"])
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--checkpoint", help="checkpoint or baseline run folder (default: the bundled model)")
    p.add_argument("--snr", type=float, help="mix noise at this SNR in dB")
    p.add_argument("--noise", default="white", choices=["white", "pink", "music"])
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--no-lyrics", action="store_true", help="ignore lyrics (audio only)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="resamples for 95%% bootstrap intervals of accuracy, macro-F1, AUC (0: none; default 1000)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)
