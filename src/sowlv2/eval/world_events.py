"""The ``events`` preset of the synthetic world: a video where choosing which frames to process matters.

The default world (``sowlv2.eval.world``) keeps every object moving on a slowly panning, noisy
background: every frame differs from the last, so a fixed stride is as good as any choice of frames.
This preset is the opposite, closer to a surveillance or desk camera:

- a **static camera**: the background does not pan, and the sensor noise is a fixed pattern drawn
  once per scene, so a frame where nothing moves is bit-for-bit the previous frame;
- objects that **stop and go**: each scene alternates calm stretches (10-60 frames, nothing moves) and
  active stretches (8-24 frames, some of the objects move, each at its own speed and heading, and
  spin); between them the video has long stretches of zero change;
- **rare entries and exits** at random times: in each scene at least one object enters after the
  scene starts (sliding in from an edge or popping up), and some objects leave (sliding off an edge
  or vanishing) before the scene ends;
- **one or two scene cuts**: at a cut the whole scene changes: a new background and new objects
  (every label appears in one scene only, so an id never has to survive a cut);
- within a scene the objects have **distinct colours** (2-4 objects): the demo SAM 2 cannot tell two
  objects of one colour apart (README, "Demo models"), and this world is for measuring the choice of
  frames, not that weakness.

Masks are exact by construction, as in the default world: each frame composites the objects' masks
back to front into an id map and paints the colours from that id map. Everything is drawn from numpy
generators seeded by the caller: the same seed gives the same video, bit for bit. Seeds 0-99 are
held out (the demo models were trained on the default world with seeds >= 1000).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .world import COLOURS, SHAPES, WorldVideo, head_for_nearest_edge
from .world import move as move_object

MIN_FRAMES = 60
CALM = (10, 60)  # frames of a calm stretch (nothing moves), inclusive
ACTIVE = (8, 24)  # frames of an active stretch (some objects move), inclusive


@dataclass
class _EventObj:
    """Plan and state of one object of the events world (private; lengths in pixels, angles in radians)."""

    id: int
    colour: str
    shape: str
    radius: float
    scene: int
    enter: int
    exit: int  # frame it starts leaving (== its scene's end when it stays until the cut)
    scene_end: int  # first frame of the next scene: the object is gone from there on, whatever its phase
    enter_edge: bool
    exit_edge: bool
    moving: np.ndarray  # (frames,) bool: the schedule says move on this frame
    # state
    x: float = 0.0
    y: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    angle: float = 0.0
    spin: float = 0.0
    scale: float = 1.0
    was_moving: bool = False
    phase: str = "waiting"  # waiting -> entering -> inside -> leaving -> gone
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = f"{self.colour} {self.shape}"


class EventWorldVideo(WorldVideo):
    """One synthetic video of the ``events`` preset, streamed: iterate for ``(rgb, id_map)`` per frame.

    Attributes:
        seed, frames, size, fps, noise: as for ``WorldVideo``.
        categories: object id (1..K) -> label; every label is unique in the video.
        cuts: the frames where the scene changes (1 or 2 of them, sorted).
        scenes: ``[(start, end), ...]`` frame ranges of the scenes (end exclusive).
        events: planned events, sorted by frame: ``{"frame", "kind": "enter" | "exit" | "cut",
            "id"}`` (``id`` None for a cut). An ``exit`` is the frame an object starts leaving (it
            slides off an edge over a few frames, or vanishes on that frame).

    Iterating yields ``rgb`` (H, W, 3) uint8 RGB and ``id_map`` (H, W) uint8 (0 = background, k = the
    visible part of object k), as ``WorldVideo`` does; each iteration starts over with the same frames.
    """

    def __init__(self, seed: int | Sequence[int], frames: int = 150, size: tuple[int, int] = (320, 240), *,
                 noise: int = 6, fps: float = 24.0) -> None:
        width, height = size
        if frames < MIN_FRAMES:
            raise UsageError(f"frames must be >= {MIN_FRAMES} for the events preset, got {frames}")
        if width < 16 or height < 16 or width > 4096 or height > 4096:
            raise UsageError(f"size must be between 16x16 and 4096x4096 pixels, got {width}x{height}")
        if not 0 <= noise <= 64:
            raise UsageError(f"noise must be in 0..64, got {noise}")
        self.seed = seed
        self.frames = int(frames)
        self.size = (int(width), int(height))
        self.noise = int(noise)
        self.fps = float(fps)
        plan_seq, self._motion_seq = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(plan_seq)
        n_cuts = 1 + int(rng.random() < 0.5)
        if n_cuts == 1:
            self.cuts = [int(rng.integers(int(0.35 * frames), int(0.65 * frames) + 1))]
        else:
            self.cuts = [int(rng.integers(int(0.22 * frames), int(0.40 * frames) + 1)),
                         int(rng.integers(int(0.60 * frames), int(0.78 * frames) + 1))]
        bounds = [0, *self.cuts, self.frames]
        self.scenes = list(zip(bounds[:-1], bounds[1:], strict=True))
        self._plan = self._make_event_plan(rng)
        self.categories = {o.id: o.label for o in self._plan}
        events = [{"frame": c, "kind": "cut", "id": None} for c in self.cuts]
        for o in self._plan:
            if o.enter != self.scenes[o.scene][0]:
                events.append({"frame": o.enter, "kind": "enter", "id": o.id})
            if o.exit != self.scenes[o.scene][1]:
                events.append({"frame": o.exit, "kind": "exit", "id": o.id})
        self.events = sorted(events, key=lambda e: (e["frame"], e["kind"], e["id"] or 0))

    def _schedule(self, rng: np.random.Generator, start: int, end: int, n: int) -> np.ndarray:
        """(n, frames) bool: which of the scene's n objects the schedule moves on each frame of [start, end).

        Calm stretches (nobody moves) alternate with active stretches (each object moves with
        probability 0.6, at least one does); the scene starts with either.
        """
        moving = np.zeros((n, self.frames), bool)
        t = start
        active = rng.random() < 0.4
        while t < end:
            lo, hi = ACTIVE if active else CALM
            length = int(rng.integers(lo, hi + 1))
            if active:
                who = rng.random(n) < 0.6
                who[int(rng.integers(n))] = True
                moving[who, t:min(end, t + length)] = True
            t += length
            active = not active
        return moving

    def _make_event_plan(self, rng: np.random.Generator) -> list[_EventObj]:
        w, h = self.size
        base = min(w, h)
        # each scene's objects have distinct colours (the demo SAM 2 cannot tell two objects of one colour
        # apart: that would measure its weakness, not the choice of frames), and every label appears in
        # one scene only: each colour takes a new shape per scene (4 colours x 3 shapes, <= 3 scenes)
        shapes_left = {c: list(rng.permutation(len(SHAPES))) for c in COLOURS}
        objs: list[_EventObj] = []
        for s, (start, end) in enumerate(self.scenes):
            length = end - start
            n = int(rng.integers(2, len(COLOURS) + 1))
            colours = [list(COLOURS)[int(i)] for i in rng.permutation(len(COLOURS))[:n]]
            moving = self._schedule(rng, start, end, n)
            min_life = max(10, length // 4)
            for i in range(n):
                colour = colours[i]
                shape = SHAPES[int(shapes_left[colour].pop())]
                radius = float(rng.uniform(0.08, 0.15) * base)
                late = i == n - 1  # the last object of each scene enters after the scene starts
                enter = start
                if late:
                    enter = int(rng.integers(start + min(5, length // 4), start + max(6, int(0.7 * length))))
                exit_ = end
                if rng.random() < 0.35 and enter + min_life < end - 3:
                    exit_ = int(rng.integers(enter + min_life, end - 2))
                objs.append(_EventObj(id=len(objs) + 1, colour=colour, shape=shape, radius=radius, scene=s,
                                      enter=enter, exit=exit_, scene_end=end, enter_edge=late and rng.random() < 0.6,
                                      exit_edge=rng.random() < 0.6, moving=moving[i]))
        return objs

    def _new_velocity(self, o: _EventObj, rng: np.random.Generator) -> None:
        speed = rng.uniform(1.0, 4.0) * min(self.size) / 240.0
        heading = rng.uniform(0, 2 * math.pi)
        o.vx, o.vy = speed * math.cos(heading), speed * math.sin(heading)
        o.spin = float(rng.normal(0, 0.05))

    def _event_enter(self, o: _EventObj, rng: np.random.Generator) -> None:
        """Place object o: at a random spot inside the frame, or just outside an edge, heading in."""
        w, h = self.size
        r = o.radius
        o.angle = float(rng.uniform(0, 2 * math.pi))
        self._new_velocity(o, rng)
        if o.enter_edge:
            side = int(rng.integers(4))
            speed = 4.0 * min(w, h) / 240.0
            if side in (0, 1):  # left, right
                o.x = -0.3 * r if side == 0 else w + 0.3 * r
                o.y = float(rng.uniform(r, h - r))
            else:  # top, bottom
                o.y = -0.3 * r if side == 2 else h + 0.3 * r
                o.x = float(rng.uniform(r, w - r))
            # head for a point well inside the frame, so that it gets fully in
            tx, ty = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
            heading = math.atan2(ty - o.y, tx - o.x)
            o.vx, o.vy = speed * math.cos(heading), speed * math.sin(heading)
            o.phase = "entering"
        else:
            o.x, o.y = float(rng.uniform(r, w - r)), float(rng.uniform(r, h - r))
            o.phase = "inside"

    def _event_step(self, o: _EventObj, t: int, rng: np.random.Generator) -> None:
        """Advance object o to frame t; it moves only when entering, leaving or scheduled to move."""
        w, h = self.size
        if o.phase == "waiting":
            if t >= o.enter:
                self._event_enter(o, rng)
            return
        if o.phase == "gone":
            return
        if t >= o.scene_end:  # the cut: the whole scene is replaced
            o.phase = "gone"
            return
        if t >= o.exit and o.phase != "leaving":
            if not o.exit_edge:
                o.phase = "gone"
                return
            o.phase = "leaving"
            head_for_nearest_edge(o, w, h, 4.0 * min(w, h) / 240.0)
        move = o.phase in ("entering", "leaving") or bool(o.moving[t])
        if o.phase == "inside" and move and not o.was_moving:
            self._new_velocity(o, rng)  # a new heading each time it starts moving again
        o.was_moving = move and o.phase == "inside"
        if not move:
            return
        if o.phase == "inside" and rng.random() < 0.08:  # an occasional turn
            turn = float(rng.normal(0, 0.7))
            c, s = math.cos(turn), math.sin(turn)
            o.vx, o.vy = o.vx * c - o.vy * s, o.vx * s + o.vy * c
        move_object(o, o.radius, w, h)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        w, h = self.size
        rng = np.random.default_rng(self._motion_seq)
        objs = [_EventObj(id=o.id, colour=o.colour, shape=o.shape, radius=o.radius, scene=o.scene,
                          enter=o.enter, exit=o.exit, scene_end=o.scene_end, enter_edge=o.enter_edge,
                          exit_edge=o.exit_edge, moving=o.moving) for o in self._plan]
        depth = [objs[i] for i in rng.permutation(len(objs))]  # back to front
        lut = np.zeros((256, 3), np.float32)
        for o in objs:
            lut[o.id] = COLOURS[o.colour]
        bg = grain = None
        for t in range(self.frames):
            if t == 0 or t in self.cuts:
                previous = bg
                for _ in range(10):  # a cut shows a clearly different background (mean change >= 20)
                    bg = self._background(rng, 0)
                    if previous is None or np.abs(bg - previous).mean() >= 20:
                        break
                # fixed-pattern sensor noise: drawn once per scene, so still frames repeat exactly
                grain = rng.integers(-self.noise, self.noise + 1, size=bg.shape).astype(np.float32)
            for o in objs:
                self._event_step(o, t, rng)
            id_map = np.zeros((h, w), np.uint8)
            for o in depth:
                if o.phase in ("entering", "inside", "leaving"):
                    self._draw(o, id_map)
            img = bg.copy()
            fg = id_map > 0
            img[fg] = lut[id_map[fg]]
            img += grain
            yield np.clip(img, 0, 255).astype(np.uint8), id_map


def iter_event_video(seed: int | Sequence[int], frames: int = 150, size: tuple[int, int] = (320, 240), *,
                     noise: int = 6, fps: float = 24.0) -> EventWorldVideo:
    """Plan one ``events`` video; iterate the result for ``(rgb, id_map)`` frames.

    Args:
        seed: seeds every random choice; the same seed and settings give the same frames, bit for bit.
        frames: number of frames (>= 60; the preset is meant for 150-300).
        size: (width, height) in pixels.
        noise: amplitude of the fixed-pattern noise (drawn once per scene) added to every channel.
        fps: frame rate recorded for writing.

    Returns:
        An ``EventWorldVideo`` (``.categories``, ``.cuts``, ``.scenes``, ``.events`` known before
        iterating).
    """
    return EventWorldVideo(seed, frames, size, noise=noise, fps=fps)
