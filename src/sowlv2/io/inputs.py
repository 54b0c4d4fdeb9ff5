"""Turning ``--input`` into a list of inputs, each an image or a video (file or folder of frames)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, UsageError
from ..types import Frame
from .images import IMAGE_SUFFIXES, list_images, natural_key, read_image
from .video import VIDEO_SUFFIXES, iter_video_frames, probe_video

DEFAULT_FRAMES_FPS = 25.0


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


def discover_inputs(input_path: str | Path, frames: bool = False) -> list[InputItem]:
    """List what ``--input`` names.

    A file is an image or a video (by extension). A folder is a set of independent images (natural
    order) unless ``frames`` is set, when it is one video whose frames are its images.
    """
    path = Path(input_path).expanduser()
    if not path.exists():
        raise UsageError(f"input: {input_path} does not exist")
    if path.is_file():
        if frames:
            raise UsageError(f"input: --frames expects a folder of frames, got the file {input_path}")
        return [InputItem(path, _kind_of_file(path), path.stem or path.name)]
    if not path.is_dir():
        raise UsageError(f"input: {input_path} is neither a file nor a folder")
    if frames:
        if not list_images(path):
            raise InputError(f"{input_path}: the folder holds no image frames "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [InputItem(path, "frames", path.name)]
    images = list_images(path)
    videos = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                     and p.suffix.lower() != ".gif" and not p.name.startswith(".")), key=natural_key)
    items = [InputItem(p, "image", p.stem) for p in images] + [InputItem(p, "video", p.stem) for p in videos]
    if not items:
        raise InputError(f"{input_path}: the folder holds no images or videos")
    items.sort(key=lambda it: natural_key(it.path))
    # Two files with the same stem (cat.jpg, cat.png) must not share a result folder.
    seen: dict[str, int] = {}
    unique = []
    for it in items:
        n = seen.get(it.name, 0)
        seen[it.name] = n + 1
        unique.append(it if n == 0 else InputItem(it.path, it.kind, f"{it.name}_{it.path.suffix.lstrip('.')}"))
    return unique


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
