"""Shared fixtures: tiny random checkpoints of the real classes, built offline once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from sowlv2.models import random_init  # noqa: E402


@pytest.fixture(scope="session")
def tiny_owl(tmp_path_factory):
    """Folder of a tiny random Owlv2ForObjectDetection + Owlv2Processor (128 px)."""
    return random_init.build_owlv2(tmp_path_factory.mktemp("owl"), size="tiny")


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    """Folder of a tiny random Sam2VideoModel checkpoint + Sam2VideoProcessor (128 px)."""
    return random_init.build_sam2(tmp_path_factory.mktemp("sam"), size="tiny")


@pytest.fixture(scope="session")
def tiny_vjepa(tmp_path_factory):
    """Folder of a tiny random VJEPA2Model (encoder checkpoint, 128 px crop)."""
    return random_init.build_vjepa2(tmp_path_factory.mktemp("vjepa"), size="tiny")


@pytest.fixture(scope="session")
def tiny_vjepa_classifier(tmp_path_factory):
    """Folder of a tiny random VJEPA2ForVideoClassification (like the seed's default checkpoint)."""
    return random_init.build_vjepa2(tmp_path_factory.mktemp("vjepa_cls"), size="tiny", classifier=True)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures the 'sowlv2' logger when tests call main() in-process; undo it after each test
    so that caplog (which listens on the root logger) sees library logs in later tests."""
    import logging

    logger = logging.getLogger("sowlv2")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
