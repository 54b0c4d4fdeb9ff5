"""Exports for training data: YOLO-seg, CVAT XML, Label Studio, DAVIS and MOTS.

Each format is a ``sowlv2.stages.Sink`` that writes ``<result folder>/export/<format>/`` as frames
arrive (formats grouped by track spool per-track data to small files until the end). A live run gets
them from ``--export FORMAT ...`` (``export_sinks``); ``sowlv2 export RESULT_FOLDER`` replays an
existing result folder through the same sinks (``sowlv2.export.replay``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError

FORMAT_NAMES = ("yolo", "cvat", "labelstudio", "davis", "mots")


def check_formats(formats: Iterable[str], where: str = "export") -> list[str]:
    """The formats in order without repeats; UsageError naming the known ones for an unknown one."""
    out: list[str] = []
    for f in formats:
        if f not in FORMAT_NAMES:
            raise UsageError(f"{where}: unknown format {f!r}; known formats: {', '.join(FORMAT_NAMES)}")
        if f not in out:
            out.append(f)
    return out


def _formats() -> dict:
    from .cvat import CvatSink
    from .davis import DavisSink
    from .labelstudio import LabelStudioSink
    from .mots import MotsSink
    from .yolo import YoloSink

    return {"yolo": YoloSink, "cvat": CvatSink, "labelstudio": LabelStudioSink, "davis": DavisSink,
            "mots": MotsSink}


def export_sinks(formats: Iterable[str], prefix: str = "export") -> list:
    """One sink per format (in order, repeats dropped), sharing one frame-image writer.

    Args:
        formats: names from ``FORMAT_NAMES``.
        prefix: sub-folder of the result folder the formats go in (``""``: directly in it).

    Raises:
        UsageError: an unknown format, or ``yolo`` without scikit-image installed.
    """
    names = check_formats(formats)
    if not names:
        return []
    if "yolo" in names:
        try:
            import skimage.measure  # noqa: F401
        except ImportError:
            raise UsageError("export: the yolo format needs scikit-image: pip install 'sowlv2[export]'") from None
    from ._base import FrameFiles

    frames = FrameFiles()
    registry = _formats()
    return [registry[n](prefix=prefix, frames=frames) for n in names]


def __getattr__(name: str):
    if name == "FORMATS":  # {"yolo": YoloSink, ...}, imported on first use
        return _formats()
    raise AttributeError(name)


__all__ = ["FORMAT_NAMES", "FORMATS", "check_formats", "export_sinks"]
