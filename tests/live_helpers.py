"""Helpers of tests/test_live.py: a live HTTP MPEG-TS server on 127.0.0.1 and fake models.

``TsServer`` encodes synthetic frames with PyAV (H.264 in MPEG-TS, flushed per packet) and sends them
at real-time pace with chunked transfer (FFmpeg's HTTP client treats a response without
Content-Length and without chunking as truncated). Connection k streams ``sessions[k]`` seconds and
then drops the connection abruptly; after the last session the server stops listening (killed).
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import numpy as np

from sowlv2.types import Detections, TrackedMask


def synthetic_frame(k: int, size: tuple[int, int] = (64, 96)) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a red square moving right on grey."""
    h, w = size
    img = np.full((h, w, 3), 90, np.uint8)
    x = (3 * k) % (w - 20)
    img[h // 4:h // 4 + 20, x:x + 20] = (230, 30, 30)
    return img


class _Chunked(io.RawIOBase):
    def __init__(self, wfile) -> None:
        self.wfile = wfile

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = bytes(b)
        if b:
            self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
            self.wfile.flush()
        return len(b)


class TsServer:
    """Serve ``http://127.0.0.1:PORT/cam.ts`` live.

    Args:
        sessions: seconds each successive connection streams before it is cut (None: until stopped).
        fps: frame rate of the stream (sent at this pace).
        size: (H, W) of the synthetic frames.
        frames: (H, W, 3) uint8 RGB frames to send in a loop instead of the synthetic ones.
        stall: seconds a connection stays open, silent, after its session before it is cut.
    """

    def __init__(self, sessions=(None,), fps: int = 10, size=(64, 96), frames=None, stall: float = 0.0) -> None:
        self.sessions, self.fps, self.size, self.stall = list(sessions), fps, size, stall
        self.frames = frames
        if frames is not None:
            self.size = frames[0].shape[:2]
        self.connections = 0
        self.frames_sent = 0
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                k = server.connections
                server.connections += 1
                if k >= len(server.sessions):
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    server._stream(self.wfile, server.sessions[k])
                    server._stop.wait(server.stall)
                except (BrokenPipeError, ConnectionResetError, OSError, av.error.FFmpegError):
                    pass
                self.close_connection = True  # cut: no final chunk
                if k == len(server.sessions) - 1:
                    threading.Thread(target=server.close, daemon=True).start()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.ts"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _stream(self, wfile, seconds) -> None:
        out = av.open(_Chunked(wfile), "w", format="mpegts", options={"flush_packets": "1"})
        stream = out.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = self.size[1], self.size[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(self.fps)}
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set() and (seconds is None or k < seconds * self.fps):
            rgb = (synthetic_frame(self.frames_sent, self.size) if self.frames is None
                   else self.frames[self.frames_sent % len(self.frames)])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
            k += 1
            self.frames_sent += 1
            delay = t0 + k / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        # No flush of the encoder, no trailer: the connection is cut as if the server died.

    def close(self) -> None:
        """Stop streaming and listening (new connections are refused)."""
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def ts_bytes(n: int, fps: int = 10, size=(64, 96)) -> bytes:
    """A complete MPEG-TS (H.264) of ``n`` synthetic frames."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size[1], size[0]
        stream.pix_fmt = "yuv420p"
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(k, size), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _box_mask(box, size) -> np.ndarray:
    h, w = size
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    m = np.zeros((h, w), bool)
    m[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = True
    return m


class FakeDetector:
    """One box (the centre half of the image) for the first prompt; ``delay`` seconds per call."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.calls = delay, 0

    def detect(self, image, prompts, *, threshold=0.1, nms_iou=0.3, max_objects=None) -> Detections:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        return Detections(boxes=np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32),
                          scores=np.array([0.9], np.float32), class_ids=np.array([0], np.int64),
                          labels=(prompts[0],))


class FakeTracker:
    """A VideoTracker whose objects keep the box they were prompted with (masks = boxes)."""

    def __init__(self) -> None:
        self.boxes: dict[int, np.ndarray] = {}

    def reset(self) -> None:
        self.boxes = {}

    def track(self, frame):
        return {oid: TrackedMask(_box_mask(b, frame.size), 1.0) for oid, b in self.boxes.items()}

    def masks_for_boxes(self, boxes, frame):
        if len(boxes) == 0:
            return np.zeros((0, *frame.size), bool)
        return np.stack([_box_mask(b, frame.size) for b in boxes])

    def prompt(self, boxes, frame):
        self.boxes.update({oid: np.asarray(b) for oid, b in boxes.items()})
        return {oid: TrackedMask(_box_mask(b, frame.size), 1.0) for oid, b in boxes.items()}

    def remove(self, obj_ids) -> None:
        for oid in obj_ids:
            self.boxes.pop(oid, None)


def fake_pipeline(delay: float = 0.0, **settings):
    """A SOWLv2Pipeline with the fakes (detector every ``detect_every`` frames, default 1)."""
    from sowlv2 import PipelineBaseData, SOWLv2Pipeline

    settings = {"device": "cpu", "detect_every": 1, "progress": False, **settings}
    return SOWLv2Pipeline(PipelineBaseData(**settings), detector=FakeDetector(delay), tracker=FakeTracker(),
                          device="cpu")
