"""beets plugin: the mood of each track from mersdk (audio + lyrics), as flexible attributes.

Enable it with ``plugins: mersdk`` in beets' config.yaml (it ships with mersdk as ``beetsplug.mersdk``,
the namespace package beets loads plugins from). Config (defaults shown)::

    mersdk:
        backend: auto      # auto | torch | onnx | ... (as mersdk.Recognizer)
        device: auto
        model: null        # a checkpoint folder; null: the bundled model
        auto: no           # analyse items as they are imported
        write: no          # also write the mood into the files' tags (beets' own writing)
        force: no          # re-analyse items this model already did

Commands:
- ``beet mersdk [-f] [-w] [QUERY]``: analyse the matching items; store ``mood`` (the label),
  ``mood_valence`` and ``mood_arousal`` (floats in [-1, 1]) and ``mood_model`` (the model's hash).
  Lyrics come from the item's ``lyrics`` field (what the lyrics plugin fills) when present.
- ``beet mersdk-playlist (--mood M | --near V,A | --path-from A --to B) [--n N] [--out F.m3u8]
  [--plot F.png] [QUERY]``: the mood playlist of ``mersdk playlist``, from the library's items.
The types are declared, so ``beet ls mood:calm`` and ``beet ls mood_valence:0.5..`` work. Written
tags: the mood in the standard places (ID3 ``TMOO`` and ``TXXX:MOOD``, Vorbis ``MOOD``, MP4
``----:com.apple.iTunes:MOOD``, ASF ``WM/Mood``); valence, arousal and model in ``MERSDK_*`` fields.
"""

from __future__ import annotations

from typing import ClassVar

from beets import dbcore
from beets.plugins import BeetsPlugin
from beets.ui import Subcommand, UserError, print_, should_write
from beets.util import syspath

FIELDS = ("mood", "mood_valence", "mood_arousal", "mood_model")


def _media_fields():
    import mediafile as mf

    def text(mp3_desc: str, mp4_name: str, vorbis: str, asf: str, out_type=str):
        places = {"float_places": 3}  # as `mersdk tag --write-tags` writes them (mediafile's default: 2)
        return mf.MediaField(
            mf.MP3DescStorageStyle(mp3_desc, **places),
            mf.MP4StorageStyle(mp4_name, **places),
            mf.StorageStyle(vorbis, **places),
            mf.ASFStorageStyle(asf, **places),
            out_type=out_type,
        )

    # ID3: TMOO is what v2.4 readers take, TXXX:MOOD what v2.3 readers take (and what survives beets'
    # id3v23 option, which drops TMOO); mediafile writes every style and reads the first one present
    mood = mf.MediaField(
        mf.MP3StorageStyle("TMOO"),
        mf.MP3DescStorageStyle("MOOD"),
        mf.MP4StorageStyle("----:com.apple.iTunes:MOOD"),
        mf.StorageStyle("MOOD"),
        mf.ASFStorageStyle("WM/Mood"),
    )
    mp4 = "----:com.apple.iTunes:"
    return {
        "mood": mood,
        # the names `mersdk tag --write-tags` writes (mersdk.tagging.write_tags), so both read each other's
        "mood_valence": text("MERSDK_VALENCE", f"{mp4}MERSDK_VALENCE", "MERSDK_VALENCE", "MERSDK_VALENCE", float),
        "mood_arousal": text("MERSDK_AROUSAL", f"{mp4}MERSDK_AROUSAL", "MERSDK_AROUSAL", "MERSDK_AROUSAL", float),
        "mood_model": text("MERSDK_MODEL", f"{mp4}MERSDK_MODEL", "MERSDK_MODEL", "MERSDK_MODEL"),
    }


class MersdkPlugin(BeetsPlugin):
    # floats shown with 4 digits (beets' FLOAT shows 1, too coarse for values in [-1, 1])
    item_types: ClassVar[dict] = {
        "mood": dbcore.types.STRING,
        "mood_valence": dbcore.types.Float(4),
        "mood_arousal": dbcore.types.Float(4),
        "mood_model": dbcore.types.STRING,
    }

    def __init__(self, name: str | None = None):
        super().__init__(name)
        self.config.add(
            {"backend": "auto", "device": "auto", "model": None, "auto": False, "write": False, "force": False}
        )
        for field, descriptor in _media_fields().items():
            self.add_media_field(field, descriptor)
        self._recognizer = None
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    @property
    def recognizer(self):
        if self._recognizer is None:
            from mersdk import Recognizer

            self._recognizer = Recognizer(
                model=self.config["model"].get(),
                backend=self.config["backend"].as_str(),
                device=self.config["device"].as_str(),
            )
            self._log.debug("mersdk: {!r}", self._recognizer)
        return self._recognizer

    # ------------------------------------------------------------------------------------------
    def commands(self):
        analyse = Subcommand("mersdk", help="analyse the mood of items with mersdk (audio + lyrics)")
        analyse.parser.add_option(
            "-f", "--force", action="store_true", default=False, help="re-analyse items this model already did"
        )
        analyse.parser.add_option(
            "-w", "--write", action="store_true", default=None, help="write the mood into the files' tags"
        )
        analyse.parser.add_option("-W", "--nowrite", action="store_false", dest="write", help="do not write tags")
        analyse.func = self.command

        playlist = Subcommand("mersdk-playlist", help="mood playlist (M3U8) from the analysed items")
        p = playlist.parser
        p.add_option("--mood", help="items labelled with this mood, most typical first")
        p.add_option("--near", metavar="V,A", help="items nearest this valence,arousal point")
        p.add_option("--path-from", dest="path_from", metavar="MOOD|V,A", help="a smooth path from this mood/point")
        p.add_option("--to", metavar="MOOD|V,A", help="... to this one")
        p.add_option("--n", type="int", default=50, help="playlist length (default 50)")
        p.add_option("--out", help="the .m3u8 to write (default: print the paths)")
        p.add_option("--plot", help="also plot the items in the valence/arousal plane (PNG)")
        playlist.func = self.playlist_command
        return [analyse, playlist]

    def command(self, lib, opts, args):
        write = self.config["write"].get(bool) if opts.write is None else opts.write
        self.analyse(lib.items(args), write=should_write(write), force=opts.force or self.config["force"].get(bool))

    def imported(self, session, task):
        self.analyse(task.imported_items(), write=self.config["write"].get(bool), force=True)

    def analyse(self, items, *, write: bool, force: bool) -> int:
        """Predict and store each item's mood; returns how many were analysed. An unreadable file is
        logged and skipped; the others go on."""
        from mersdk.errors import MersdkError

        rec = self.recognizer
        model = rec.info()["model"]["hash"]
        done = 0
        for item in items:
            if not force and item.get("mood_model") == model:
                continue
            lyrics = item.get("lyrics") or None
            try:
                # lyrics as bytes: read as text, never taken for a file name
                pred = rec.predict(syspath(item.path), lyrics.encode("utf-8") if lyrics else None)
            except MersdkError as e:
                self._log.warning("mersdk: {}: {}", item.filepath, e)
                continue
            item["mood"] = pred.label
            item["mood_valence"] = round(pred.valence, 4)
            item["mood_arousal"] = round(pred.arousal, 4)
            item["mood_model"] = pred.model
            item.store()
            if write:
                item.try_write()
            done += 1
            self._log.info(
                "mersdk: {}: {} (valence {:+.2f}, arousal {:+.2f}{})",
                item.filepath,
                pred.label,
                pred.valence,
                pred.arousal,
                ", lyrics" if pred.lyrics_used else "",
            )
        return done

    def playlist_command(self, lib, opts, args):
        from mersdk.errors import MersdkError
        from mersdk.playlist import Track, run_selection

        tracks = [
            Track(
                syspath(item.path),
                item["mood"],
                float(item["mood_valence"]),
                float(item["mood_arousal"]),
                item.length or None,
            )
            for item in lib.items(args)
            if item.get("mood_valence") is not None and item.get("mood")
        ]
        try:
            run_selection(tracks, opts, emit=print_, note=print_)
        except MersdkError as e:
            raise UserError(f"mersdk-playlist: {e}") from None
