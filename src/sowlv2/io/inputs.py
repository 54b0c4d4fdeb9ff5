"""Turning ``--input`` into a list of inputs, each an image or a video (file or folder of frames)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, UsageError
from ..types import Frame
from .images import IMAGE_SUFFIXES, list_images, natural_key, read_image
from .video import VIDEO_SUFFIXES, iter_video_frames, probe_video

DEFAULT_FRAMES_FPS = 25.0
MAX_NAME_BYTES = 200  # leaves room for the ".<name>.partial" form within the usual 255-byte limit
RESERVED_NAMES = {"run.json"}  # files of the run itself, next to the result folders


@dataclass(frozen=True)
class InputItem:
    """One thing to process.

    Attributes:
        path: the file, or the folder of frames.
        kind: ``"image"``, ``"video"`` (a video file) or ``"frames"`` (a folder of frames read as a video).
        name: the name of its result folder.
    """

    path: Path
    kind: str
    name: str

    @property
    def is_video(self) -> bool:
        return self.kind in ("video", "frames")


def _kind_of_file(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES and suffix != ".gif":
        return "video"
    return "image"


def result_name(text: str) -> str:
    """Make an input's name (a file stem or folder name) a safe result-folder name.

    The result is one path component: no separators or control characters, not ``.`` or ``..``, no
    leading dot (hidden names are the run's own ``.<name>.partial`` folders), no trailing dots or
    spaces, at most ``MAX_NAME_BYTES`` bytes of UTF-8, and never a file name of the run (``run.json``).
    Letters of any script and inner spaces are kept: ``"été 2024"`` stays ``"été 2024"``.
    """
    # Separators, control characters, characters Windows forbids, and lone surrogates (undecodable
    # bytes of a file name) become "_".
    name = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|\ud800-\udfff]', "_", text)
    name = name.lstrip(". ").rstrip(". ")
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        name = encoded[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").rstrip(". ")
    if not name:
        name = "input"
    if name.casefold() in RESERVED_NAMES:
        name += "_"
    return name


def _unique(items: list[InputItem]) -> list[InputItem]:
    """Give inputs that share a result name (cat.jpg, cat.png; Cat.jpg on a case-insensitive disk)
    distinct names: the second becomes ``cat_png``, then ``cat_png_2`` if that is taken too."""
    used: set[str] = set()
    out = []
    for it in items:
        name = it.name
        if name.casefold() in used:
            base = result_name(f"{name}_{it.path.suffix.lstrip('.')}" if it.path.suffix else name)
            name, k = base, 2
            while name.casefold() in used:
                name = f"{base}_{k}"
                k += 1
        used.add(name.casefold())
        out.append(it if name == it.name else InputItem(it.path, it.kind, name))
    return out


def discover_inputs(input_path: str | Path, frames: bool = False) -> list[InputItem]:
    """List what ``--input`` names.

    A file is an image or a video (by extension). A folder is a set of independent images (natural
    order) unless ``frames`` is set, when it is one video whose frames are its images. Each input's
    result-folder name comes from its file stem (or folder name) through ``result_name``, so no
    input name can point outside the output folder.
    """
    path = Path(input_path).expanduser()
    if not path.exists():
        raise UsageError(f"input: {input_path} does not exist")
    if path.is_file():
        if frames:
            raise UsageError(f"input: --frames expects a folder of frames, got the file {input_path}")
        return [InputItem(path, _kind_of_file(path), result_name(path.stem or path.name))]
    if not path.is_dir():
        raise UsageError(f"input: {input_path} is neither a file nor a folder")
    if frames:
        if not list_images(path):
            raise InputError(f"{input_path}: the folder holds no image frames "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [InputItem(path, "frames", result_name(path.resolve().name))]
    images = list_images(path)
    videos = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                     and p.suffix.lower() != ".gif" and not p.name.startswith(".")), key=natural_key)
    items = ([InputItem(p, "image", result_name(p.stem)) for p in images]
             + [InputItem(p, "video", result_name(p.stem)) for p in videos])
    if not items:
        raise InputError(f"{input_path}: the folder holds no images or videos "
                         f"(looked for {', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
    items.sort(key=lambda it: natural_key(it.path))
    return _unique(items)


def iter_frames(item: InputItem, fps: float | None = None) -> Iterator[Frame]:
    """Stream the frames of a video input (file or folder of frames)."""
    if item.kind == "video":
        yield from iter_video_frames(item.path, fps=fps)
        return
    if item.kind != "frames":
        raise ValueError(f"{item.path} is not a video input")
    rate = fps or DEFAULT_FRAMES_FPS
    size = None
    for k, p in enumerate(list_images(item.path)):
        image = read_image(p)
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise InputError(f"{p}: frame size {image.shape[1]}x{image.shape[0]} differs from the first "
                             f"frame's {size[1]}x{size[0]}")
        yield Frame(index=k, time=round(k / rate, 6), image=image, source_index=k)


def video_fps(item: InputItem, fps: float | None) -> float:
    """The processing frame rate: ``--fps`` when given, else the source's (a float: 29.97 stays)."""
    if fps:
        return float(fps)
    if item.kind == "frames":
        return DEFAULT_FRAMES_FPS
    return probe_video(item.path).fps or DEFAULT_FRAMES_FPS


_GLOB_CHARS = set("*?[")


def read_input_list(list_file: str | Path) -> list[Path]:
    """The paths of an ``--input-list`` file: one per line; blank lines and lines starting with ``#``
    are skipped; a relative path is relative to the list file's folder.

    Raises:
        UsageError: the file cannot be read, or lists nothing.
    """
    list_file = Path(list_file).expanduser()
    try:
        text = list_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"input-list: {list_file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"input-list: cannot read {list_file}: {exc}") from None
    base = list_file.absolute().parent
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line).expanduser()
            paths.append(path if path.is_absolute() else base / path)
    if not paths:
        raise UsageError(f"input-list: {list_file} lists no inputs (one path per line)")
    return paths


def collect_inputs(input_path: str | Path | None = None, input_list: str | Path | None = None,
                   frames: bool = False) -> list[InputItem]:
    """Every input of a run: ``input_path`` (a file, a folder, or a glob such as ``videos/*.mp4``),
    or each path listed in ``input_list`` (see ``read_input_list``); each path goes through
    ``discover_inputs``, and result-folder names are made unique over all of them.

    Paths are made absolute (``..`` removed), so that workers with another working folder find them.

    Raises:
        UsageError: a path does not exist (naming its list line), a glob matches nothing.
        InputError: a folder holds no images or videos.
    """
    if input_list is not None:
        paths = read_input_list(input_list)
        items = []
        for line_no, path in enumerate(paths, 1):
            if not path.exists():
                raise UsageError(f"input-list: {path} (entry {line_no} of {input_list}) does not exist")
            items += discover_inputs(path, frames=frames)
    else:
        text = str(input_path)
        if not Path(text).expanduser().exists() and _GLOB_CHARS & set(text):
            import glob

            matches = sorted(glob.glob(str(Path(text).expanduser()), recursive=True),
                             key=lambda m: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", m)])
            matches = [m for m in matches if frames or Path(m).is_file()]
            if not matches:
                raise UsageError(f"input: the pattern {text} matches no " + ("folders" if frames else "files"))
            items = [it for m in matches for it in discover_inputs(m, frames=frames)]
        else:
            items = discover_inputs(input_path, frames=frames)
    items = [InputItem(Path(os.path.abspath(it.path)), it.kind, it.name) for it in items]
    return _unique(items)
