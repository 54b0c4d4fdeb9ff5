"""``sowlv2 export``: the export formats of an existing result folder, without running any model.

The result folder's results.json gives every frame's objects (COCO RLE masks); the frames come from
the source the run read (``--source``, else the path ``OUTPUT/run.json`` recorded for the input).
Everything is checked before anything is written, and the formats are written into a hidden
``.<output>.partial`` folder moved into place at the end: on any error nothing is left behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError, UsageError
from ..io import rle
from ..io.sinks import is_result_folder
from ..stages import InputInfo, RunSummary
from ..types import FrameResult
from . import check_formats, export_sinks

log = logging.getLogger(__name__)


_HEADER_KEYS = ("input", "kind", "width", "height", "prompts")
_CHUNK = 1 << 20


class ResultsReader:
    """Reads a results.json as a stream: the keys before ``"frames"`` when opened, then the frames one
    at a time (``frames()``), then the keys after them (``tail``), so a long video's results are never
    all in memory. A file whose ``frames`` come before the header keys is read whole instead.

    Raises:
        InputError: the file is not JSON of the results.json shape (when opened or while reading).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._decoder = json.JSONDecoder()
        self._buf, self._pos, self._eof = "", 0, False
        self.header: dict = {}
        self.tail: dict = {}
        self.count = 0
        self._whole: list | None = None
        try:
            self._file = open(path, encoding="utf-8")  # noqa: SIM115 - closed by frames() or close()
        except OSError as exc:
            raise InputError(f"{path}: unreadable ({exc.strerror or exc})") from None
        try:
            self._expect("{")
            while True:
                key = self._key()
                if key is None:
                    raise InputError(f"{path}: not a SOWLv2 results.json (no frames)")
                if key == "frames":
                    break
                self.header[key] = self._value()
                self._after_member()
            if any(k not in self.header for k in _HEADER_KEYS):  # not the layout SOWLv2 writes: read it whole
                self._file.seek(0)
                data = json.load(self._file)
                self.header = {k: v for k, v in data.items() if k != "frames"}
                self._whole = list(data["frames"])
                self._file.close()
        except ValueError as exc:
            self._file.close()
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        except BaseException:
            self._file.close()
            raise
        missing = [k for k in _HEADER_KEYS if k not in self.header]
        if missing:
            raise InputError(f"{path}: not a SOWLv2 results.json (missing {', '.join(missing)})")

    # ------------------------------------------------------------------ the tokenizer
    def _fill(self) -> None:
        if self._pos > _CHUNK:
            self._buf, self._pos = self._buf[self._pos:], 0
        more = self._file.read(max(_CHUNK, len(self._buf)))  # doubling: a big value is rescanned log times
        if not more:
            self._eof = True
        self._buf += more

    def _peek(self) -> str:
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if self._eof:
                raise InputError(f"{self.path}: ends too early (truncated?)")
            self._fill()

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise InputError(f"{self.path}: not a SOWLv2 results.json (expected {char!r} at offset {self._pos})")
        self._pos += 1

    def _value(self):
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
                if end < len(self._buf) or self._eof:  # a number cut by the buffer's end would look whole
                    self._pos = end
                    return value
            except json.JSONDecodeError:
                if self._eof:
                    raise
            self._fill()

    def _key(self) -> str | None:
        """The next member's key (its ':' consumed), or None at the object's end."""
        if self._peek() == "}":
            self._pos += 1
            return None
        key = self._value()
        self._expect(":")
        return key

    def _after_member(self) -> None:
        if self._peek() == ",":
            self._pos += 1

    # ------------------------------------------------------------------ frames
    def frames(self) -> Iterator[dict]:
        """Yield each frame record in order; afterwards ``tail`` holds the keys after the frames."""
        if self._whole is not None:
            for rec in self._whole:
                self.count += 1
                yield rec
            return
        try:
            self._expect("[")
            if self._peek() == "]":
                self._pos += 1
            else:
                while True:
                    rec = self._value()
                    self.count += 1
                    yield rec
                    c = self._peek()
                    self._pos += 1
                    if c == "]":
                        break
                    if c != ",":
                        raise InputError(f"{self.path}: not a SOWLv2 results.json (frames)")
            self._after_member()
            while (key := self._key()) is not None:
                self.tail[key] = self._value()
                self._after_member()
        except ValueError as exc:
            raise InputError(f"{self.path}: not valid JSON ({exc})") from None
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()


def _open_results(folder: Path) -> ResultsReader:
    if not is_result_folder(folder):
        raise UsageError(f"export: {folder} is not a SOWLv2 result folder (no results.json); give the folder "
                         "of one input, e.g. OUTPUT/<input name>")
    return ResultsReader(folder / "results.json")


def find_source(folder: Path, results: dict, source: str | Path | None = None) -> Path:
    """The input the run read: ``source`` if given, else what ``<output>/run.json`` recorded for it.

    Raises:
        InputError: the source is not given and not recorded, or does not exist.
    """
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(f"export: --source {source} does not exist")
        return path
    run_json = folder.parent / "run.json"
    recorded = None
    if run_json.is_file():
        try:
            rec = json.loads(run_json.read_text(encoding="utf-8")).get("inputs", {}).get(folder.name)
            recorded = rec.get("path") if isinstance(rec, dict) else None
        except (OSError, ValueError, AttributeError):
            recorded = None
    if recorded and Path(recorded).exists():
        return Path(recorded)
    where = f"{recorded} (recorded in {run_json}) does not exist" if recorded else \
        f"{run_json} does not record it" if run_json.is_file() else f"there is no {run_json}"
    raise InputError(f"export: cannot find the frames of {folder} (input {results['input']!r}): {where}; "
                     "give the image, video or frame folder with --source PATH")


def _frame_result(rec: dict, size: tuple[int, int], prompts: list[str]) -> FrameResult:
    objs = rec.get("objects", [])
    h, w = size
    try:
        masks = np.stack([rle.decode(o["mask"]) for o in objs]) if objs else np.zeros((0, h, w), bool)
        class_ids = [prompts.index(o["label"]) for o in objs]
        return FrameResult(
            index=int(rec["index"]), time=float(rec.get("time", 0.0)), size=size,
            ids=np.array([int(o["id"]) for o in objs], np.int64), labels=tuple(o["label"] for o in objs),
            class_ids=np.array(class_ids, np.int64), scores=np.array([o["score"] for o in objs], np.float32),
            boxes=np.array([o["box"] for o in objs], np.float32).reshape(-1, 4), masks=masks,
            keyframe=bool(rec.get("keyframe", True)), source_index=rec.get("source_index"))
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"results.json: frame {rec.get('index')} is malformed ({type(exc).__name__}: {exc})") from None


def _frames(results: dict, records: Iterator[dict], source: Path) -> Iterator[tuple[FrameResult, np.ndarray]]:
    """Pair each recorded frame with its image from the source (videos: by source frame index)."""
    from ..io.images import read_image
    from ..io.inputs import discover_inputs, iter_frames

    size = (int(results["height"]), int(results["width"]))
    prompts = list(results["prompts"])

    def check(image: np.ndarray, what: str) -> np.ndarray:
        if image.shape[:2] != size:
            raise InputError(f"export: {what} is {image.shape[1]}x{image.shape[0]}, the result's frames are "
                             f"{size[1]}x{size[0]}: not the source of this result (give --source)")
        return image

    if results["kind"] == "image":
        if not source.is_file():
            raise InputError(f"export: {source} is not an image file (the result is of the image "
                             f"{results['input']!r})")
        image = check(read_image(source), str(source))
        for rec in records:
            yield _frame_result(rec, size, prompts), image
        return
    items = discover_inputs(source, frames=source.is_dir())
    if len(items) != 1 or not items[0].is_video:
        raise InputError(f"export: {source} is not a video or a folder of frames (the result is of the "
                         f"video {results['input']!r})")
    frames = iter_frames(items[0])
    current = None
    for rec in records:
        want = rec.get("source_index")
        want = int(rec["index"]) if want is None else int(want)
        while current is None or (current.source_index if current.source_index is not None else current.index) < want:
            current = next(frames, None)
            if current is None:
                raise InputError(f"export: {source} ends before frame {want} of the result: not the source "
                                 "of this result (give --source)")
        yield _frame_result(rec, size, prompts), check(current.image, f"frame {want} of {source}")


def export_result(folder: str | Path, formats: list[str], output: str | Path | None = None,
                  source: str | Path | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``formats`` of the result folder ``folder`` into ``output/<format>/``.

    Args:
        folder: one input's result folder (holds results.json).
        formats: names from ``sowlv2.export.FORMAT_NAMES``.
        output: where the formats go (default ``folder/export``).
        source: the image / video / frame folder the run read (default: from ``run.json``).
        overwrite: replace formats already in ``output``.

    Returns:
        The folders written, one per format.

    Raises:
        UsageError: unknown format, not a result folder, a format folder exists without ``overwrite``.
        InputError: the source cannot be found or does not match the result. Nothing is written.
    """
    names = check_formats(formats, where="export --format")
    if not names:
        raise UsageError("export: give at least one format with --format")
    folder = Path(folder).expanduser()
    reader = _open_results(folder)
    try:
        return _export(reader, folder, names, output, source, overwrite)
    finally:
        reader.close()


def _export(reader: ResultsReader, folder: Path, names: list[str], output, source, overwrite: bool) -> list[Path]:
    results = reader.header
    output = Path(output).expanduser() if output is not None else folder / "export"
    if output.exists() and not output.is_dir():
        raise UsageError(f"export: --output {output} is a file, not a folder")
    taken = [n for n in names if (output / n).exists()]
    if taken and not overwrite:
        raise UsageError(f"export: {', '.join(str(output / n) for n in taken)} exists; use --overwrite to "
                         "replace it or choose another --output")
    src = find_source(folder, results, source)
    sinks = export_sinks(names, prefix="")
    kind = "image" if results["kind"] == "image" else "video"
    info = InputInfo(name=str(results["input"]), kind=kind, prompts=tuple(results["prompts"]),
                     size=(int(results["height"]), int(results["width"])), fps=results.get("fps"),
                     source=src if kind == "image" else None)
    stage = output.with_name(f".{output.name}.partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    opened = []
    try:
        for sink in sinks:
            sink.open(stage, info)
            opened.append(sink)
        for result, image in _frames(results, reader.frames(), src):
            for sink in sinks:
                sink.write(result, image)
        tail = reader.tail
        summary = RunSummary(tail.get("keyframes", []), tail.get("keyframe_scores", []), tail.get("tracks", []),
                             tail.get("stats", {}), reader.count)
        for sink in sinks:
            sink.close(summary)
    except BaseException:
        for sink in opened:
            try:
                sink.abort()
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                log.debug("aborting an export sink failed", exc_info=True)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for n in names:
        if (output / n).exists():
            shutil.rmtree(output / n)
        os.replace(stage / n, output / n)
        written.append(output / n)
    shutil.rmtree(stage, ignore_errors=True)
    return written
