"""Command line: ``mersdk predict``, ``mersdk analyze``, ``mersdk info`` (more verbs are added by
other modules).

Exit status: 0 success; 1 when an input failed (an audio file, or one of several given to
``predict``, which reports it and goes on); 2 for usage errors (bad options, an unusable
``--lyrics-*``, ``--plot``, ``--model`` or ``--backend``); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .errors import AudioError, MersdkError, UsageError
from .files import check_regular_file

EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def _table(rows: list[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def _bar(p: float, width: int = 24) -> str:
    n = int(round(p * width))
    return "#" * n + "." * (width - n)


def _given_lyrics(args):
    """(given, lyrics, label) from --lyrics-file / --lyrics-text / --lyrics, read once before any
    model loads, so a bad option is a usage error. ``--lyrics X`` is a file when X names an
    existing file system entry (a FIFO or device then gets its error), else the API's str rule."""
    from pathlib import Path

    from .lyrics import load_lyrics, parse_lyrics_text, read_lyrics_file

    if args.lyrics_file is not None:
        return True, read_lyrics_file(args.lyrics_file), "--lyrics-file"
    if args.lyrics_text is not None:
        return True, parse_lyrics_text(args.lyrics_text), "--lyrics-text"
    if args.lyrics is not None:
        given = args.lyrics
        return True, load_lyrics(Path(given) if given and os.path.lexists(given) else given), "--lyrics"
    return False, None, None


def _auto_lyrics(audio: str, auto: bool):
    """(lyrics, where they came from) for a file, as `mersdk tag` finds them: a sidecar .lrc, ID3
    SYLT (time-stamped), a sidecar .txt, other embedded lyrics."""
    if not auto or not os.path.isfile(audio):
        return None, None
    from .tagging.lyrics_tags import find_lyrics

    found = find_lyrics(audio)
    for w in found.warnings:
        print(f"warning: {audio}: {w}", file=sys.stderr)
    return found.lyrics, found.source


def _progress_bar(args, n: int):
    """A tqdm bar on stderr for multi-file runs: when stderr is a terminal, or asked (--progress)."""
    wanted = args.progress if args.progress is not None else (n > 1 and sys.stderr.isatty())
    if not wanted:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=n, unit="file", file=sys.stderr, dynamic_ncols=True)


def _prediction_table(r, rec, lyrics_source) -> str:
    rows = [(lab, f"{p:6.1%}  {_bar(p)}") for lab, p in sorted(r.probabilities.items(), key=lambda kv: -kv[1])]
    rows += [
        ("label", r.label),
        ("valence", f"{r.valence:+.3f}"),
        ("arousal", f"{r.arousal:+.3f}"),
        ("lyrics used", (f"yes ({lyrics_source})" if lyrics_source else "yes") if r.lyrics_used else "no"),
        ("fusion weight", f"{r.fusion_weight:.3f}"),
        ("duration", f"{r.duration_s:.1f} s ({r.n_windows} window{'s' if r.n_windows > 1 else ''})"),
        ("backend", f"{r.backend} ({rec.choice.reason})"),
        ("model", r.model + ("" if rec.info()["model"]["trained"] else "  [UNTRAINED placeholder]")),
    ]
    return _table(rows)


def cmd_predict(args) -> int:
    """One result per file as it comes (a table, or one JSON object per line with --json, whatever
    the count); a file that fails is reported and the rest go on; exit 1 when any failed."""
    from .recognizer import Recognizer

    given, lyrics, lyrics_label = _given_lyrics(args)
    rec = Recognizer(model=args.model, backend=args.backend, device=args.device)
    bar = _progress_bar(args, len(args.audio))

    def emit(text: str, err: bool = False) -> None:
        out = sys.stderr if err else sys.stdout
        if bar is not None:
            bar.write(text, file=out)
        else:
            print(text, file=out, flush=True)

    failed = 0
    try:
        for a in args.audio:
            try:
                ly, src = (lyrics, lyrics_label) if given else _auto_lyrics(a, args.auto_lyrics)
                r = rec.predict(a, lyrics=ly)
            except MersdkError as e:
                failed += 1
                if args.json:
                    emit(json.dumps({"audio": a, "error": str(e), "error_type": type(e).__name__}))
                emit(f"mersdk: error: {e}", err=True)
            else:
                emit(
                    json.dumps(r.to_dict() | {"audio": a, "error": None})
                    if args.json
                    else f"{a}\n{_prediction_table(r, rec, src)}"
                )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if failed and len(args.audio) > 1:
        print(f"mersdk: {failed} of {len(args.audio)} files failed", file=sys.stderr)
    return EXIT_INPUT_FAILED if failed else 0


def _check_plot_path(path: str) -> None:
    """Everything that would make writing the plot fail, checked before the analysis runs."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError('--plot needs matplotlib: pip install "mersdk[plot]"')
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a directory; give a file name such as timeline.png")
    if os.path.lexists(path):  # an existing FIFO would block the write; a device would take it
        check_regular_file(path, error=UsageError)
    if not os.path.isdir(folder):
        raise UsageError(f"--plot {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--plot {path}: the folder {folder} is not writable")
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise UsageError(f"--plot {path}: unknown image format {suffix!r}; use one of {', '.join(sorted(formats))}")


def cmd_analyze(args) -> int:
    from .recognizer import Recognizer
    from .timeline import plot_analysis

    if args.plot:
        _check_plot_path(args.plot)
    given, lyrics, source = _given_lyrics(args)
    rec = Recognizer(model=args.model, backend=args.backend, device=args.device)
    if not given:
        lyrics, source = _auto_lyrics(args.audio, args.auto_lyrics)
    if source and lyrics is not None and not args.json:
        print(
            f"lyrics: {source}"
            + (
                " (time-stamped: lines aligned to segments)"
                if lyrics.timed
                else " (plain: every segment reads the whole text)"
            )
        )
    a = rec.analyze(args.audio, lyrics, window_s=args.window_s, hop_s=args.hop_s, smooth=args.smooth)
    if args.plot:
        plot_analysis(a, lyrics, args.plot, title=f"{args.audio}: {a.summary.label}")
    if args.json:
        print(json.dumps(a.to_dict(), indent=2))
        return 0
    s = a.summary
    print(
        f"{args.audio}: {s.label}  valence {s.valence:+.2f}  arousal {s.arousal:+.2f}  "
        f"fusion {s.fusion_weight:.2f}  ({len(a.timeline)} segments of {a.window_s:g} s every {a.hop_s:g} s, "
        f"smooth {a.smooth})"
    )
    print(f"{'start':>7} {'end':>7}  {'label':<10} {'val':>6} {'aro':>6} {'fusion':>6}  lyrics")
    for seg in a.timeline:
        first = seg.lyric_lines[0][:40] + (" ..." if len(seg.lyric_lines) > 1 else "") if seg.lyric_lines else ""
        print(
            f"{seg.start_s:7.1f} {seg.end_s:7.1f}  {seg.label:<10} {seg.valence:+6.2f} {seg.arousal:+6.2f} "
            f"{seg.fusion_weight:6.2f}  {first}"
        )
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def cmd_info(args) -> int:
    import mersdk

    if args.model is not None or args.load:
        from .recognizer import Recognizer

        data = Recognizer(model=args.model).info()
    else:
        from . import backends
        from .checkpoint import read_checkpoint

        data = mersdk.info()
        ck = read_checkpoint(None)
        # whether a backend can run the model depends on the checkpoint too (an ONNX export beside it)
        data["backends"] = {
            k: ("available" if v is None else v) for k, v in backends.availability(checkpoint=ck).items()
        }
        data["model"] = {
            "path": str(ck.path),
            "hash": ck.model_hash,
            "trained": bool(ck.metadata.get("trained")),
            "labels": {t.name: list(t.labels) for t in ck.config.tasks},
        }
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
            b = data["backend"]
            rows.append(("chosen", f"{b['name']}/{b['device']}: {b['reason']}"))
        m = data["model"]
        rows += [
            ("model", f"{m['path']} ({m['hash']}{', trained' if m['trained'] else ', UNTRAINED placeholder'})"),
            ("labels", ", ".join(m["labels"][next(iter(m["labels"]))])),
        ]
        print(_table(rows))
    return 0


def _number(kind, minimum, inclusive: bool = True):
    """An argparse type: a finite number >= minimum (> minimum when not inclusive)."""

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(v) or v < minimum or (v == minimum and not inclusive):
            relation = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"must be a finite number {relation} {minimum:g}, got {text}")
        return v

    return parse


def _add_lyrics_options(p, default_help: str) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--lyrics-file", metavar="PATH", help="a lyrics file, plain text or LRC (any name)")
    g.add_argument("--lyrics-text", metavar="TEXT", help="the lyrics themselves (never read as a file name)")
    g.add_argument(
        "--lyrics",
        metavar="PATH_OR_TEXT",
        help="a file when it names an existing file, else the text (a single word ending in .txt/.lrc "
        "that names no file is an error); " + default_help,
    )
    p.add_argument(
        "--no-auto-lyrics",
        dest="auto_lyrics",
        action="store_false",
        help="without --lyrics*, use no lyrics instead of looking for sidecar or embedded ones",
    )


def _add_model_options(p) -> None:
    from .backends import PREFERENCE

    p.add_argument("--model", help="checkpoint folder (default: the bundled model)")
    p.add_argument("--backend", default="auto", choices=("auto",) + PREFERENCE)
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    ap = argparse.ArgumentParser(prog="mersdk", description="Music emotion recognition from audio and lyrics.")
    ap.add_argument("--version", action="version", version=f"mersdk {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the emotion of audio files")
    p.add_argument("audio", nargs="+", help="audio file(s): WAV, FLAC, OGG/Opus, MP3, ...")
    _add_lyrics_options(
        p, "default: a sidecar .lrc/.txt or lyrics embedded in each file's tags, as `mersdk tag` finds them"
    )
    _add_model_options(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON Lines: one object per file as it is done (error: null, or the message)",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal and there are several files)",
    )
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("analyze", help="emotion timeline of a whole track, lyrics aligned to the audio")
    p.add_argument("audio")
    _add_lyrics_options(
        p,
        "LRC timestamps align lines to segments; default: a sidecar .lrc/.txt, or ID3 "
        "SYLT/USLT, Vorbis or MP4 lyrics embedded in the file",
    )
    p.add_argument(
        "--window-s", type=_number(float, 1.0), default=10.0, help="segment length in seconds, >= 1 (default 10)"
    )
    p.add_argument(
        "--hop-s",
        type=_number(float, 0.0, inclusive=False),
        default=5.0,
        help="seconds between segment starts, > 0 (default 5)",
    )
    p.add_argument("--smooth", type=_number(int, 1), default=3, help="centred moving average over N segments (1 = raw)")
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="write a valence/arousal-over-time plot (needs matplotlib); checked before the analysis runs",
    )
    _add_model_options(p)
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

    for mod in (
        "mersdk.training.cli",
        "mersdk.export.cli",
        "mersdk.bench_cli",
        "mersdk.tagging.cli",
        "mersdk.serve.cli",
        "mersdk.playlist",
    ):
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
    """Run a parsed command; mersdk errors become a one-line message: exit status 1 when the input
    (audio) failed, 2 for everything the user must change in the command (see the module docs)."""
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
        return EXIT_INPUT_FAILED if isinstance(e, AudioError) else EXIT_USAGE
    except ImportError as e:  # an optional extra is missing; the message names it
        print(f"mersdk: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
