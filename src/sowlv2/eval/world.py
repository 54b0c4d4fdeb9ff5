"""A synthetic video world with exact ground truth, for measuring SOWLv2 without hand labels.

Each video shows a few coloured shapes (``red circle``, ``blue triangle``, ... : 4 colours x 3 shapes)
over a textured, slowly panning, noisy background. Objects move, change speed and direction, spin,
grow and shrink a little, enter (popping up or sliding in from an edge) and leave (popping out or
sliding off an edge) at random times, and occlude each other by a fixed depth order. A scene cut
swaps the background for a new one from one frame to the next.

Masks are exact by construction: each frame draws every object's mask, composites the masks back to
front into an id map (so the id map shows only what is visible), and then paints the colours *from*
the id map. The annotation of a pixel is therefore exactly the object whose colour was drawn there.

Everything is drawn from numpy ``Generator`` streams seeded by the caller, so a seed gives the same
video, bit for bit, on every run. ``iter_world_video`` streams frames in memory; ``generate_world``
writes DAVIS-style folders (``video.mp4``, ``Annotations/00000.png``, ``categories.json``) and, around
them, the DAVIS 2017 layout (``JPEGImages/480p/``, ``Annotations_unsupervised/480p/``, ``ImageSets/2017``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import UsageError

log = logging.getLogger(__name__)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 185, 60),
    "blue": (40, 70, 225),
    "yellow": (235, 215, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
KINDS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)


def davis_palette() -> list[int]:
    """The 256-entry PASCAL VOC / DAVIS colour map as a flat [r0, g0, b0, r1, ...] list (768 ints).

    Index 0 is black (background), 1 is (128, 0, 0), 2 is (0, 128, 0), ...: the bits of the index are
    spread over the high bits of the three channels.
    """
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = davis_palette()


def save_annotation(path: str | Path, id_map: np.ndarray) -> None:
    """Write a (H, W) uint8 id map as an indexed PNG with the DAVIS palette (pixel value = object id)."""
    img = Image.fromarray(np.ascontiguousarray(id_map, dtype=np.uint8))  # mode "L"; the palette makes it "P"
    img.putpalette(_PALETTE)
    img.save(path, optimize=False, compress_level=1)


@dataclass
class _Obj:
    """Plan and state of one object (private; all lengths in pixels, angles in radians)."""

    id: int
    colour: str
    shape: str
    radius: float
    enter: int
    exit: int  # first frame without the object (== frames when it stays to the end)
    enter_edge: bool
    exit_edge: bool
    # state, set when the object enters
    x: float = 0.0
    y: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    angle: float = 0.0
    spin: float = 0.0
    scale: float = 1.0
    phase: str = "waiting"  # waiting -> entering -> inside -> leaving -> gone
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = f"{self.colour} {self.shape}"


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float, angle: float) -> np.ndarray:
    """Boolean mask of a shape of size r centred at 0, for pixel-centre offsets dx (1, w), dy (h, 1)."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    c, s = math.cos(angle), math.sin(angle)
    if shape == "square":
        a = 0.85 * r
        u = dx * c + dy * s
        v = dy * c - dx * s
        return (np.abs(u) <= a) & (np.abs(v) <= a)
    # equilateral triangle of circumradius 1.2 r: inside all three half-planes at inradius 0.6 r
    inside = None
    for k in range(3):
        t = angle + math.pi / 2 + k * 2 * math.pi / 3
        half = dx * math.cos(t) + dy * math.sin(t) <= 0.6 * r
        inside = half if inside is None else inside & half
    return inside


def head_for_nearest_edge(o, w: int, h: int, speed: float) -> None:
    """Point object ``o``'s velocity at the nearest edge of a ``w`` x ``h`` scene, at ``speed``."""
    side = int(np.argmin([o.x, w - o.x, o.y, h - o.y]))
    o.vx, o.vy = [(-speed, 0.0), (speed, 0.0), (0.0, -speed), (0.0, speed)][side]


def move(o, r: float, w: int, h: int) -> None:
    """Advance object ``o`` (radius ``r``) one frame in a ``w`` x ``h`` scene: spin and move it; an
    entering object fully inside starts bouncing off the walls; a leaving one out of sight is gone."""
    o.angle += o.spin
    o.x += o.vx
    o.y += o.vy
    if o.phase == "entering" and r <= o.x <= w - r and r <= o.y <= h - r:
        o.phase = "inside"
    if o.phase == "inside":  # bounce off the walls
        if (o.x < r and o.vx < 0) or (o.x > w - r and o.vx > 0):
            o.vx = -o.vx
        if (o.y < r and o.vy < 0) or (o.y > h - r and o.vy > 0):
            o.vy = -o.vy
    if o.phase == "leaving" and (o.x < -1.3 * r or o.x > w + 1.3 * r or o.y < -1.3 * r or o.y > h + 1.3 * r):
        o.phase = "gone"


class WorldVideo:
    """One synthetic video, streamed: iterate to get ``(rgb, id_map)`` per frame.

    Attributes:
        seed: what seeded the numpy generators (an int, or a sequence of ints).
        frames: number of frames.
        size: (width, height) in pixels.
        categories: object id (1..K) -> label such as ``"red circle"``. Every planned object is
            listed; one may be hidden behind others in some frames, and (rarely) in all of them.
        cuts: frame indices where the background changes abruptly (a scene cut).
        fps: frame rate to write the video at.

    Iterating yields, for each frame in order, ``rgb`` (H, W, 3) uint8 RGB and ``id_map`` (H, W)
    uint8 where each pixel is the id of the visible object there, 0 for background. Each iteration
    starts over and yields the same frames.
    """

    def __init__(self, seed: int | Sequence[int], frames: int, size: tuple[int, int] = (320, 240), *,
                 min_objects: int = 2, max_objects: int = 5, cut_at: int | None = None,
                 cut_prob: float = 0.3, noise: int = 6, fps: float = 24.0) -> None:
        width, height = size
        if frames < 1:
            raise UsageError(f"frames must be >= 1, got {frames}")
        if width < 16 or height < 16 or width > 4096 or height > 4096:
            raise UsageError(f"size must be between 16x16 and 4096x4096 pixels, got {width}x{height}")
        if not 1 <= min_objects <= max_objects <= len(KINDS):
            raise UsageError(f"need 1 <= min_objects <= max_objects <= {len(KINDS)}, "
                             f"got {min_objects} and {max_objects}")
        if cut_at is not None and not 1 <= cut_at < frames:
            raise UsageError(f"cut_at must be a frame index in 1..{frames - 1}, got {cut_at}")
        if not 0 <= noise <= 64:
            raise UsageError(f"noise must be in 0..64, got {noise}")
        self.seed = seed
        self.frames = frames
        self.size = (int(width), int(height))
        self.noise = int(noise)
        self.fps = float(fps)
        self._min_objects, self._max_objects = min_objects, max_objects
        plan_seq, self._motion_seq = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(plan_seq)
        # drawn whatever cut_at says, so that forcing a cut leaves the rest of the video unchanged
        random_cut = rng.random() < cut_prob and frames >= 8
        cut_frame = int(rng.integers(max(1, frames // 4), max(2, 3 * frames // 4 + 1)))
        if cut_at is not None:
            self.cuts = [int(cut_at)]
        else:
            self.cuts = [cut_frame] if random_cut else []
        self._plan = self._make_plan(rng)
        self.categories = {o.id: o.label for o in self._plan}

    def _make_plan(self, rng: np.random.Generator) -> list[_Obj]:
        w, h = self.size
        n = int(rng.integers(self._min_objects, self._max_objects + 1))
        kinds = rng.choice(len(KINDS), size=n, replace=False)
        base = min(w, h)
        min_life = max(8, self.frames // 4)
        objs = []
        for i in range(n):
            colour, shape = KINDS[int(kinds[i])]
            radius = float(rng.uniform(0.07, 0.15) * base)
            # the first two objects are there from frame 0; the others enter later
            enter = 0 if i < 2 else int(rng.integers(1, max(2, int(0.7 * self.frames))))
            exit_ = self.frames
            if rng.random() < 0.4 and enter + min_life < self.frames:
                exit_ = int(rng.integers(enter + min_life, self.frames + 1))
            objs.append(_Obj(id=i + 1, colour=colour, shape=shape, radius=radius, enter=enter,
                             exit=exit_, enter_edge=enter > 0 and rng.random() < 0.6,
                             exit_edge=rng.random() < 0.6))
        return objs

    def __len__(self) -> int:
        return self.frames

    def _background(self, rng: np.random.Generator, pad: int) -> np.ndarray:
        """(H + 2 pad, W + 2 pad, 3) float32 textured background in 0..255, low saturation."""
        w, h = self.size
        hh, ww = h + 2 * pad, w + 2 * pad
        tex = np.zeros((hh, ww), np.float32)
        for cell, amp in ((int(rng.integers(24, 64)), 45.0), (int(rng.integers(6, 14)), 18.0)):
            grid = rng.uniform(-1, 1, size=(hh // cell + 2, ww // cell + 2)).astype(np.float32)
            up = np.asarray(Image.fromarray(grid).resize(
                ((ww // cell + 2) * cell, (hh // cell + 2) * cell), Image.BILINEAR))
            tex += amp * up[:hh, :ww]
        if rng.random() < 0.5:  # stripes or a checker-like weave
            yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
            t = rng.uniform(0, math.pi)
            period = rng.uniform(10, 40)
            tex += 14.0 * np.sin((xx * math.cos(t) + yy * math.sin(t)) * 2 * math.pi / period)
        grey = rng.uniform(80, 170)
        tint = rng.uniform(-0.12, 0.12, size=3).astype(np.float32)
        bg = (grey + tex)[..., None] * (1.0 + tint)
        return np.clip(bg, 0, 255).astype(np.float32)

    def _enter(self, o: _Obj, rng: np.random.Generator, others: list[_Obj]) -> None:
        """Place object o in the scene; half the time it heads for (or pops up beside) another object."""
        w, h = self.size
        active = [p for p in others if p.phase in ("entering", "inside")]
        target = active[int(rng.integers(len(active)))] if active and rng.random() < 0.5 else None
        speed_scale = min(w, h) / 240.0
        speed = rng.uniform(0.5, 4.0) * speed_scale
        r = o.radius
        if o.enter_edge:
            side = int(rng.integers(4))
            if side in (0, 1):  # left, right
                o.x = -0.3 * r if side == 0 else w + 0.3 * r
                o.y = rng.uniform(r, h - r)
                heading = rng.uniform(-0.6, 0.6) + (0.0 if side == 0 else math.pi)
            else:  # top, bottom
                o.y = -0.3 * r if side == 2 else h + 0.3 * r
                o.x = rng.uniform(r, w - r)
                heading = rng.uniform(-0.6, 0.6) + (math.pi / 2 if side == 2 else -math.pi / 2)
            if target is not None:
                heading = math.atan2(target.y - o.y, target.x - o.x)
            speed = max(speed, 1.5 * speed_scale)
            o.phase = "entering"
        else:
            o.x, o.y = rng.uniform(r, w - r), rng.uniform(r, h - r)
            heading = rng.uniform(0, 2 * math.pi)
            if target is not None:  # partly overlapping the target
                d = 0.9 * (r + target.radius)
                o.x = float(np.clip(target.x + d * math.cos(heading), r, w - r))
                o.y = float(np.clip(target.y + d * math.sin(heading), r, h - r))
            o.phase = "inside"
        o.vx, o.vy = speed * math.cos(heading), speed * math.sin(heading)
        o.angle = rng.uniform(0, 2 * math.pi)
        o.spin = rng.normal(0, 0.04)
        o.scale = 1.0

    def _step(self, o: _Obj, t: int, rng: np.random.Generator, others: list[_Obj]) -> None:
        """Advance one object's state to frame t (drawing from rng in a fixed order)."""
        w, h = self.size
        if o.phase == "waiting" and t >= o.enter:
            self._enter(o, rng, others)
            return
        if o.phase in ("waiting", "gone"):
            return
        if t >= o.exit and o.phase != "leaving":
            if not o.exit_edge:
                o.phase = "gone"
                return
            o.phase = "leaving"
            head_for_nearest_edge(o, w, h, max(math.hypot(o.vx, o.vy), 2.5 * min(w, h) / 240.0))
        # random speed and direction changes
        u = rng.random(3)
        if u[0] < 0.06 and o.phase == "inside":
            f = rng.uniform(0.3, 2.2)
            turn = rng.normal(0, 0.8)
            c, s = math.cos(turn), math.sin(turn)
            vx, vy = o.vx * f, o.vy * f
            sp = math.hypot(vx, vy)
            cap = 6.0 * min(w, h) / 240.0
            if sp > cap:
                vx, vy = vx * cap / sp, vy * cap / sp
            o.vx, o.vy = vx * c - vy * s, vx * s + vy * c
        o.scale = float(np.clip(o.scale * (1.0 + 0.01 * (u[1] - 0.5)), 0.7, 1.4))
        move(o, o.radius * o.scale, w, h)

    def _draw(self, o: _Obj, id_map: np.ndarray) -> None:
        """Paint object o's mask with its id over id_map (H, W) uint8, in place."""
        h, w = id_map.shape
        r = o.radius * o.scale * (1.2 if o.shape == "triangle" else 1.0)
        x0, x1 = max(0, int(math.floor(o.x - r))), min(w, int(math.ceil(o.x + r)) + 1)
        y0, y1 = max(0, int(math.floor(o.y - r))), min(h, int(math.ceil(o.y + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - o.x)[None, :]
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - o.y)[:, None]
        mask = _shape_mask(o.shape, dx, dy, o.radius * o.scale, o.angle)
        id_map[y0:y1, x0:x1][mask] = o.id

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        w, h = self.size
        rng = np.random.default_rng(self._motion_seq)
        objs = [_Obj(id=o.id, colour=o.colour, shape=o.shape, radius=o.radius, enter=o.enter, exit=o.exit,
                     enter_edge=o.enter_edge, exit_edge=o.exit_edge) for o in self._plan]
        # depth order, back to front: a fixed random permutation of the objects
        depth = [objs[i] for i in rng.permutation(len(objs))]
        lut = np.zeros((256, 3), np.float32)
        for o in objs:
            lut[o.id] = COLOURS[o.colour]
        pad = 0
        bg = pan = None
        for t in range(self.frames):
            if t == 0 or t in self.cuts:
                pad = max(8, min(w, h) // 8)
                bg = self._background(rng, pad)
                pan = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)]), np.array([pad, pad], float)
            for o in objs:
                self._step(o, t, rng, objs)
            velocity, pos = pan
            pos = np.clip(pos + velocity, 0, 2 * pad)
            pan = (velocity, pos)
            ox, oy = int(round(pos[0])), int(round(pos[1]))
            id_map = np.zeros((h, w), np.uint8)
            for o in depth:
                if o.phase in ("entering", "inside", "leaving"):
                    self._draw(o, id_map)
            img = bg[oy:oy + h, ox:ox + w].copy()
            fg = id_map > 0
            img[fg] = lut[id_map[fg]]
            if self.noise:
                img += rng.integers(-self.noise, self.noise + 1, size=img.shape, dtype=np.int16)
            rgb = np.clip(img, 0, 255).astype(np.uint8)
            yield rgb, id_map


def iter_world_video(seed: int | Sequence[int], frames: int, size: tuple[int, int] = (320, 240), *,
                     min_objects: int = 2, max_objects: int = 5, cut_at: int | None = None,
                     cut_prob: float = 0.3, noise: int = 6, fps: float = 24.0) -> WorldVideo:
    """Plan one synthetic video; iterate the result for ``(rgb, id_map)`` frames.

    Args:
        seed: seeds every random choice; the same seed and settings give the same frames, bit for bit.
        frames: number of frames (>= 1).
        size: (width, height) in pixels.
        min_objects, max_objects: how many objects the video has (each of a different kind). The first
            two are visible from frame 0; the others enter later.
        cut_at: force one scene cut (a new background) at this frame; None lets the seed decide (a cut
            somewhere in the middle half with probability ``cut_prob``).
        cut_prob: probability of a random scene cut when ``cut_at`` is None (0 for none).
        noise: amplitude of uniform per-pixel noise added to every channel of every frame.
        fps: frame rate recorded for writing.

    Returns:
        A ``WorldVideo``: ``.categories`` (id -> label) and ``.cuts`` are known before iterating;
        iterating yields ``rgb`` (H, W, 3) uint8 RGB and ``id_map`` (H, W) uint8 (0 = background,
        k = object k, showing only its visible part).
    """
    return WorldVideo(seed, frames, size, min_objects=min_objects, max_objects=max_objects, cut_at=cut_at,
                      cut_prob=cut_prob, noise=noise, fps=fps)


PRESETS: tuple[str, ...] = ("default", "events")
DAVIS_RESOLUTION = "480p"  # the folder name the official DAVIS 2017 evaluation reads, whatever the frame size
DAVIS_SET = "val"


def _davis_folders(out: Path, name: str) -> tuple[Path, Path, Path]:
    """``out``'s DAVIS 2017 folders of sequence ``name``, emptied of earlier frames: (JPEGImages,
    Annotations_unsupervised, Annotations), each ``.../480p/<name>``."""
    folders = tuple(out / top / DAVIS_RESOLUTION / name
                    for top in ("JPEGImages", "Annotations_unsupervised", "Annotations"))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (*folder.glob("*.jpg"), *folder.glob("*.png")):
            stale.unlink()
    return folders


def generate_world(output_dir: str | Path, seed: int = 0, frames: int = 40,
                   size: tuple[int, int] = (320, 240), videos: int = 1, *, fps: float = 24.0,
                   progress: bool = False, preset: str = "default", **kwargs) -> list[Path]:
    """Write synthetic videos with DAVIS-style ground truth.

    Video ``i`` is ``iter_world_video(seed=(seed, i), ...)`` and goes to ``output_dir/video_{i:03d}/``:
    ``video.mp4`` (H.264), ``Annotations/{frame:05d}.png`` (indexed PNG with the DAVIS palette, pixel
    value = object id, 0 = background, one per frame), ``categories.json`` (``{"1": "red circle", ...}``)
    and ``world.json`` (seed, frames, size, fps, cut frames, preset; ``events`` too for the events
    preset). Frames stream to disk as they are drawn.

    ``output_dir`` is also a DAVIS 2017 root with one sequence ``video_{i:03d}`` per video, laid out as
    the official davis2017-evaluation code reads it: ``JPEGImages/480p/<seq>/{frame:05d}.jpg`` (the
    frames as drawn, JPEG quality 95), ``Annotations_unsupervised/480p/<seq>/{frame:05d}.png`` (unsupervised
    task) and ``Annotations/480p/<seq>/{frame:05d}.png`` (semi-supervised task), both the same PNGs as
    ``video_{i:03d}/Annotations/``, and ``ImageSets/2017/val.txt`` listing the sequences. ``480p`` is
    the folder name the official code reads; the frames keep ``size``.

    Args:
        output_dir: folder to create (existing video folders are overwritten).
        seed, frames, size: as for ``iter_world_video``.
        videos: how many videos.
        fps: frame rate of the MP4.
        progress: show a tqdm bar over frames.
        preset: ``"default"`` (``iter_world_video``) or ``"events"`` (``world_events.iter_event_video``:
            stop-and-go objects, static camera, rare entries and exits, one or two scene cuts).
        **kwargs: passed to ``iter_world_video`` (``min_objects``, ``max_objects``, ``cut_at``,
            ``cut_prob``, ``noise``) or ``iter_event_video`` (``noise``).

    Returns:
        The video folders, in order.
    """
    from ..io.video import VideoWriter  # PyAV is only needed when writing

    if videos < 1:
        raise UsageError(f"videos must be >= 1, got {videos}")
    if preset not in PRESETS:
        raise UsageError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if preset == "events":
        from .world_events import iter_event_video as make
    else:
        make = iter_world_video
    out = Path(output_dir)
    folders = []
    bar = tqdm(total=frames * videos, disable=not progress, desc="world", unit="frame")
    try:
        for i in range(videos):
            world = make((seed, i), frames, size, fps=fps, **kwargs)
            folder = out / f"video_{i:03d}"
            ann = folder / "Annotations"
            ann.mkdir(parents=True, exist_ok=True)
            for stale in ann.glob("*.png"):
                stale.unlink()
            jpegs, davis_unsup, davis_semi = _davis_folders(out, folder.name)
            with VideoWriter(folder / "video.mp4", fps=fps) as writer:
                for t, (rgb, id_map) in enumerate(world):
                    writer.write(rgb)
                    save_annotation(ann / f"{t:05d}.png", id_map)
                    Image.fromarray(rgb).save(jpegs / f"{t:05d}.jpg", quality=95)
                    for davis in (davis_unsup, davis_semi):
                        shutil.copyfile(ann / f"{t:05d}.png", davis / f"{t:05d}.png")
                    bar.update(1)
            cats = {str(k): v for k, v in world.categories.items()}
            (folder / "categories.json").write_text(json.dumps(cats, indent=2) + "\n")
            meta = {"seed": [seed, i], "frames": frames, "width": world.size[0], "height": world.size[1],
                    "fps": fps, "cuts": world.cuts, "categories": cats, "preset": preset}
            if preset == "events":
                meta["events"] = world.events
            (folder / "world.json").write_text(json.dumps(meta, indent=2) + "\n")
            log.info("wrote %s (%d frames, %d objects)", folder, frames, len(world.categories))
            folders.append(folder)
    finally:
        bar.close()
    image_sets = out / "ImageSets" / "2017"
    image_sets.mkdir(parents=True, exist_ok=True)
    (image_sets / f"{DAVIS_SET}.txt").write_text("".join(f"{f.name}\n" for f in folders))
    return folders
