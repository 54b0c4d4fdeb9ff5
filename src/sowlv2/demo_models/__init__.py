"""Small demo checkpoints of the production model classes, trained on the synthetic world.

``owl/`` (``Owlv2ForObjectDetection`` + ``Owlv2Processor``), ``sam/`` (``Sam2VideoModel`` checkpoint,
which ``Sam2Model`` also loads, + ``Sam2VideoProcessor``) and ``vjepa2/`` (``VJEPA2Model`` +
``VJEPA2VideoProcessor``) were made by ``tools/train_demo_models.py`` from videos of
``sowlv2.eval.world`` (training seeds >= 1000; seeds 0-99 are held out for evaluation). They know
only the world's 4 colours x 3 shapes and serve to run and measure the whole pipeline offline
(``sowlv2 demo``); they are not general-purpose models. ``training.json`` in this folder records how
they were trained and what they scored.

Use the name ``"demo"`` wherever a model name is taken: :func:`resolve` maps it to the shipped folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError

DEMO_DIR = Path(__file__).resolve().parent
KINDS = ("owl", "sam", "vjepa2")
DEMO_NAME = "demo"


def resolve(name: str, kind: str) -> str:
    """Map the model name ``"demo"`` to the shipped checkpoint folder of ``kind``; return other names unchanged.

    Args:
        name: a model name as given by the user (hub id, local folder, or ``"demo"``).
        kind: ``"owl"``, ``"sam"`` or ``"vjepa2"``.

    Returns:
        The folder path (as a string) for ``"demo"``, else ``name`` itself.

    Raises:
        ValueError: ``kind`` is not one of the kinds above (a programming error).
        ModelLoadError: ``"demo"`` was asked for but the folder is missing from this installation.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")
    if name != DEMO_NAME:
        return name
    folder = DEMO_DIR / kind
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"the demo {kind} model is missing from this installation (no {folder / 'config.json'}); "
                             "reinstall sowlv2 with its package data, or rebuild it with "
                             "`python tools/train_demo_models.py`")
    return str(folder)
