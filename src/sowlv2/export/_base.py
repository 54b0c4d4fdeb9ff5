"""What every export sink shares: its folder, the frame images, per-track spools, overlap rules.

An export sink writes ``<folder>/<prefix>/<format>/`` (``prefix`` is ``export`` in a live run, so the
files land in ``<result folder>/export/<format>/``; ``sowlv2 export`` uses an empty prefix). Sinks
made together by ``export_sinks`` share one ``FrameFiles``: a frame needed as a JPEG by several
formats is encoded once and hard-linked (or copied) into the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..stages import InputInfo, RunSummary
from ..types import FrameResult

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


class FrameFiles:
    """Writes frame images once per frame and links them into every format that needs them.

    Only the current frame's file is remembered (frames arrive in order), so nothing accumulates.
    """

    def __init__(self) -> None:
        self._index: int | str | None = None
        self._path: Path | None = None

    def _link_or_copy(self, src: Path, dest: Path) -> None:
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)

    def frame_jpeg(self, index: int, image: np.ndarray, dest: Path) -> None:
        """Write frame ``index`` ((H, W, 3) uint8 RGB) as a JPEG at ``dest``, reusing an earlier file of it."""
        if self._index == index and self._path is not None and self._path.exists():
            self._link_or_copy(self._path, dest)
            return
        Image.fromarray(image).save(dest, quality=JPEG_QUALITY)
        self._index, self._path = index, dest

    def still(self, info: InputInfo, image: np.ndarray, folder: Path, stem: str | None = None) -> str:
        """Put the still image of an image input into ``folder``; returns the file name used.

        The source file is copied as it is when ``info.source`` exists (copied, never linked: an
        annotation tool that edits the export must not edit the user's file; the other formats then
        link to that copy); otherwise the array is written as a PNG. ``stem`` renames the file
        (keeping the source's suffix).
        """
        src = Path(info.source) if info.source is not None else None
        if src is not None and src.is_file():
            name = (stem + src.suffix.lower()) if stem else Path(info.name).name
            key = f"still:{src}"
            if self._index == key and self._path is not None and self._path.exists():
                self._link_or_copy(self._path, folder / name)
            else:
                shutil.copyfile(src, folder / name)
                self._index, self._path = key, folder / name
            return name
        name = f"{stem or Path(info.name).stem}.png"
        Image.fromarray(image).save(folder / name)
        return name


class TrackSpool:
    """One small JSON-lines file per track id, so formats that group by track hold no masks in memory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, object] = {}

    def add(self, oid: int, record: list) -> None:
        if oid not in self._files:
            self._files[oid] = open(self.folder / f"{oid}.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._files[oid].write(json.dumps(record) + "\n")

    @property
    def ids(self) -> list[int]:
        return sorted(self._files)

    def records(self, oid: int) -> Iterator[list]:
        """The records of track ``oid`` in the order they were added (call after ``close``)."""
        path = self.folder / f"{oid}.jsonl"
        if not path.exists():
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def paint_order(result: FrameResult) -> list[int]:
    """Object positions in the order they are painted into a one-id-per-pixel map: lowest score first,
    so where masks overlap the pixel goes to the object with the highest score (ties: the lower id)."""
    return sorted(range(len(result)), key=lambda i: (float(result.scores[i]), -int(result.ids[i])))


def id_map(result: FrameResult, values: list[int], dtype) -> np.ndarray:
    """(H, W) array of ``dtype``: 0 for background, else ``values[i]`` of the object owning the pixel
    (overlaps resolved by ``paint_order``). A value of 0 leaves the object out."""
    out = np.zeros(result.size, dtype)
    for i in paint_order(result):
        if values[i]:
            out[result.masks[i]] = values[i]
    return out


def seq_name(info: InputInfo) -> str:
    """The sequence name of an input in DAVIS/MOTS layouts: its file stem, safe as a folder name."""
    from ..io.sinks import safe_name

    return safe_name(Path(info.name).stem, max_len=100)


class ExportSink:
    """Base of the format sinks: ``open`` makes ``<folder>/<prefix>/<format>/``; subclasses write.

    Args:
        prefix: sub-folder of the result folder holding the formats (``"export"``; ``""`` for none).
        frames: shared frame-image writer (``export_sinks`` passes one to all sinks of a run).
    """

    format_name = ""

    def __init__(self, prefix: str = "export", frames: FrameFiles | None = None) -> None:
        self.prefix = prefix
        self.frames = frames or FrameFiles()
        self.dir: Path | None = None
        self.info: InputInfo | None = None
        self.count = 0  # frames written

    def open(self, folder: Path, info: InputInfo) -> None:
        self.info = info
        self.dir = Path(folder) / self.prefix / self.format_name if self.prefix else Path(folder) / self.format_name
        self.dir.mkdir(parents=True, exist_ok=False)
        self.count = 0
        self._open()

    def _open(self) -> None:
        """Subclass hook after the folder exists."""

    def write(self, result: FrameResult, image: np.ndarray) -> None:
        self._write(result, image)
        self.count += 1

    def _write(self, result: FrameResult, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self, summary: RunSummary) -> None:
        """Finish the files (subclasses extend)."""

    def abort(self) -> None:
        """Release open files; the caller removes the folder."""

    @property
    def is_video(self) -> bool:
        return self.info is not None and self.info.kind != "image"
