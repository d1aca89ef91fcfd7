"""Command line: ``mersdk predict``, ``mersdk info`` (more verbs are added by other modules)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import MersdkError


def _table(rows: list[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _bar(p: float, width: int = 24) -> str:
    n = int(round(p * width))
    return "#" * n + "." * (width - n)


def _lyrics_for(audio: str, given, auto: bool):
    """(lyrics, where they came from): --lyrics when given; else, for a file, what `mersdk tag`
    would find: a sidecar .lrc, ID3 SYLT (time-stamped), a sidecar .txt, other embedded lyrics."""
    from .lyrics import load_lyrics

    if given is not None:
        return load_lyrics(given), "--lyrics"
    if not auto or not os.path.isfile(audio):
        return None, None
    from .tagging.lyrics_tags import find_lyrics

    found = find_lyrics(audio)
    for w in found.warnings:
        print(f"warning: {audio}: {w}", file=sys.stderr)
    return found.lyrics, found.source


def cmd_predict(args) -> int:
    from .recognizer import Recognizer

    rec = Recognizer(model=args.model, backend=args.backend, device=args.device)
    found = [_lyrics_for(a, args.lyrics, args.auto_lyrics) for a in args.audio]
    results = [rec.predict(a, lyrics=ly) for a, (ly, _) in zip(args.audio, found)]
    if args.json:
        out = [r.to_dict() | {"audio": a} for a, r in zip(args.audio, results)]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
        return 0
    for a, r, (_, src) in zip(args.audio, results, found):
        print(f"{a}")
        rows = [(lab, f"{p:6.1%}  {_bar(p)}") for lab, p in sorted(r.probabilities.items(), key=lambda kv: -kv[1])]
        rows += [
            ("label", r.label),
            ("valence", f"{r.valence:+.3f}"),
            ("arousal", f"{r.arousal:+.3f}"),
            ("lyrics used", (f"yes ({src})" if src else "yes") if r.lyrics_used else "no"),
            ("fusion weight", f"{r.fusion_weight:.3f}"),
            ("duration", f"{r.duration_s:.1f} s ({r.n_windows} window{'s' if r.n_windows > 1 else ''})"),
            ("backend", f"{r.backend} ({rec.choice.reason})"),
            ("model", r.model + ("" if rec.info()["model"]["trained"] else "  [UNTRAINED placeholder]")),
        ]
        print(_table(rows))
    return 0


def cmd_analyze(args) -> int:
    from .recognizer import Recognizer
    from .timeline import plot_analysis

    rec = Recognizer(model=args.model, backend=args.backend, device=args.device)
    lyrics, source = _lyrics_for(args.audio, args.lyrics, args.auto_lyrics)
    if source and not args.json:
        print(f"lyrics: {source}" + (" (time-stamped: lines aligned to segments)" if lyrics.timed else " (plain: every segment reads the whole text)"))
    a = rec.analyze(args.audio, lyrics, window_s=args.window_s, hop_s=args.hop_s, smooth=args.smooth)
    if args.plot:
        plot_analysis(a, lyrics, args.plot, title=f"{args.audio}: {a.summary.label}")
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
        return 0
    s = a.summary
    print(f"{args.audio}: {s.label}  valence {s.valence:+.2f}  arousal {s.arousal:+.2f}  "
          f"fusion {s.fusion_weight:.2f}  ({len(a.timeline)} segments of {a.window_s:g} s every {a.hop_s:g} s, smooth {a.smooth})")
    print(f"{'start':>7} {'end':>7}  {'label':<10} {'val':>6} {'aro':>6} {'fusion':>6}  lyrics")
    for seg in a.timeline:
        first = seg.lyric_lines[0][:40] + (" ..." if len(seg.lyric_lines) > 1 else "") if seg.lyric_lines else ""
        print(f"{seg.start_s:7.1f} {seg.end_s:7.1f}  {seg.label:<10} {seg.valence:+6.2f} {seg.arousal:+6.2f} {seg.fusion_weight:6.2f}  {first}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def cmd_info(args) -> int:
    import mersdk

    if args.model is not None or args.load:
        from .recognizer import Recognizer

        data = Recognizer(model=args.model).info()
    else:
        from .checkpoint import read_checkpoint

        from . import backends

        data = mersdk.info()
        ck = read_checkpoint(None)
        # whether a backend can run the model depends on the checkpoint too (an ONNX export beside it)
        data["backends"] = {k: ("available" if v is None else v) for k, v in backends.availability(checkpoint=ck).items()}
        data["model"] = {"path": str(ck.path), "hash": ck.model_hash, "trained": bool(ck.metadata.get("trained")),
                         "labels": {t.name: list(t.labels) for t in ck.config.tasks}}
        from .ops import describe

        data["kernels"] = {"cpu": describe("cpu", ck.config.d_model // ck.config.n_heads)}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        rows = [("mersdk", data["mersdk"]), ("extension", json.dumps(data["build"]))]
        rows += [(f"backend {k}", v) for k, v in data["backends"].items()]
        kernels = data["kernels"].get("cpu", data["kernels"]) if "kernels" in data else {}
        rows += [(f"kernel {k}", v) for k, v in kernels.items()]
        if "backend" in data:
            rows.append(("chosen", f"{data['backend']['name']}/{data['backend']['device']}: {data['backend']['reason']}"))
        m = data["model"]
        rows += [("model", f"{m['path']} ({m['hash']}{', trained' if m['trained'] else ', UNTRAINED placeholder'})"),
                 ("labels", ", ".join(m["labels"][next(iter(m["labels"]))]))]
        print(_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mersdk", description="Music emotion recognition from audio and lyrics.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files")
    p.add_argument("audio", nargs="+", help="audio file(s): WAV, FLAC, OGG/Opus, MP3, ...")
    p.add_argument("--lyrics", help="lyrics text, or a path to a .txt/.lrc file (default: a sidecar .lrc/.txt or "
                   "lyrics embedded in the file's tags, as `mersdk tag` finds them)")
    p.add_argument("--no-auto-lyrics", dest="auto_lyrics", action="store_false",
                   help="without --lyrics, use no lyrics instead of looking for sidecar or embedded ones")
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("analyze", help="emotion timeline of a whole track, lyrics aligned to the audio")
    p.add_argument("audio")
    p.add_argument("--lyrics", help="lyrics text, or a .txt/.lrc path (LRC timestamps align lines to segments); "
                   "default: a sidecar .lrc/.txt, or ID3 SYLT/USLT, Vorbis or MP4 lyrics embedded in the file")
    p.add_argument("--no-auto-lyrics", dest="auto_lyrics", action="store_false",
                   help="without --lyrics, use no lyrics instead of looking for sidecar or embedded ones")
    p.add_argument("--window-s", type=float, default=10.0, help="segment length in seconds (default 10)")
    p.add_argument("--hop-s", type=float, default=5.0, help="seconds between segment starts (default 5)")
    p.add_argument("--smooth", type=int, default=3, help="centred moving average over N segments (1 = raw)")
    p.add_argument("--plot", metavar="PNG", help="write a valence/arousal-over-time plot (needs matplotlib)")
    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("info", help="version, build, available backends, model")
    p.add_argument("--model", help="checkpoint folder (loads it; default: the bundled model)")
    p.add_argument("--load", action="store_true", help="create a Recognizer to show the backend it picks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    for register in _extra_commands():
        register(sub)
    return ap


def _extra_commands():
    """Verbs that live with their code (training, evaluation, export, ...), if present."""
    import importlib

    for mod in ("mersdk.training.cli", "mersdk.export.cli", "mersdk.bench_cli", "mersdk.tagging.cli"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if not e.name or not mod.startswith(e.name):  # a missing dependency inside it is a real error
                raise
            continue
        yield m.register


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args) -> int:
    """Run a parsed command; mersdk errors become a one-line message and exit status 2."""
    # the CLI is an application, so it (not the library) decides what third parties print: no
    # weight-loading progress bars from transformers (read when it is imported), unless the user asks
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return args.func(args)
    except BrokenPipeError:  # `mersdk ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except MersdkError as e:
        print(f"mersdk: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra is missing; the message names it
        print(f"mersdk: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
