"""OWLv2 and SAM 2 image adapters through the real transformers classes (tiny random weights)."""

import numpy as np
import pytest
import torch

from sowlv2.errors import ModelLoadError
from sowlv2.models.owlv2 import Owlv2Detector
from sowlv2.models.sam2_image import Sam2ImageSegmenter

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def detector(tiny_owl):
    return Owlv2Detector.from_pretrained(str(tiny_owl), CPU)


@pytest.fixture(scope="module")
def segmenter(tiny_sam):
    return Sam2ImageSegmenter.from_pretrained(str(tiny_sam), CPU)


def _image(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def test_cached_text_path_equals_the_full_transformers_forward(detector):
    """Our split forward (text tower once, image tower per image) gives the model's own outputs."""
    image, prompts = _image(90, 200), ["cat", "a dog"]
    detector.set_prompts(prompts)
    logits, boxes = detector.forward(detector.preprocess(image))
    inputs = detector.processor(text=[prompts], images=image, return_tensors="pt")
    with torch.no_grad():
        ref = detector.model(**inputs)
    torch.testing.assert_close(logits, ref.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(boxes, ref.pred_boxes, rtol=1e-4, atol=1e-4)


def test_text_embeddings_are_computed_once_per_prompt_set(detector, monkeypatch):
    calls = []
    original = detector.model.owlv2.get_text_features
    monkeypatch.setattr(detector.model.owlv2, "get_text_features",
                        lambda **kw: calls.append(1) or original(**kw))
    detector._prompts = None
    for seed in range(3):
        detector.detect(_image(64, 80, seed), ["cat", "dog"], threshold=0.0)
    assert len(calls) == 1
    detector.detect(_image(64, 80), ["bus"], threshold=0.0)
    assert len(calls) == 2


def _fake_forward(detector, monkeypatch, boxes_cxcywh, logits):
    """Make the model 'see' given normalised boxes (in the padded square) with given logits."""
    b = torch.tensor([boxes_cxcywh], dtype=torch.float32)
    lg = torch.tensor([logits], dtype=torch.float32)
    monkeypatch.setattr(detector, "forward", lambda pv: (lg, b))


@pytest.mark.parametrize("h, w, box, expected", [
    # Wide image: padded to 200x200 at the bottom; y is measured in the square frame.
    (100, 200, (0.25, 0.25, 0.1, 0.1), [40, 40, 60, 60]),
    # Tall image: padded at the right.
    (200, 100, (0.25, 0.75, 0.1, 0.1), [40, 140, 60, 160]),
    # A box that reaches into the padding is clipped to the real image.
    (100, 200, (0.5, 0.45, 0.2, 0.2), [80, 70, 120, 100]),
])
def test_boxes_map_back_to_original_pixels_on_non_square_images(detector, monkeypatch, h, w, box, expected):
    _fake_forward(detector, monkeypatch, [box], [[5.0, -5.0]])
    dets = detector.detect(_image(h, w), ["cat", "dog"], threshold=0.5)
    assert len(dets) == 1 and dets.labels == ("cat",)
    np.testing.assert_allclose(dets.boxes[0], expected, atol=1e-3)


def test_per_class_nms_max_objects_and_labels_keep_prompt_text(detector, monkeypatch):
    boxes = [(0.3, 0.3, 0.2, 0.2), (0.31, 0.3, 0.2, 0.2), (0.3, 0.3, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)]
    # patch 0/1 overlap and are both "A red Car"; patch 2 is the same box but "bus"; patch 3 elsewhere.
    logits = [[4.0, -9.0], [3.0, -9.0], [-9.0, 2.0], [1.0, -9.0]]
    _fake_forward(detector, monkeypatch, boxes, logits)
    dets = detector.detect(_image(100, 100), ["A red Car", "bus"], threshold=0.5, nms_iou=0.5)
    assert dets.labels == ("A red Car", "bus", "A red Car")  # the duplicate car is suppressed, bus is kept
    np.testing.assert_allclose(dets.scores, torch.sigmoid(torch.tensor([4.0, 2.0, 1.0])).numpy(), rtol=1e-5)
    top = detector.detect(_image(100, 100), ["A red Car", "bus"], threshold=0.5, max_objects=2)
    assert top.labels == ("A red Car", "bus")
    assert len(detector.detect(_image(100, 100), ["A red Car", "bus"], threshold=0.99)) == 0


def test_sam_masks_are_at_original_resolution(segmenter):
    image = _image(97, 131)
    masks, iou = segmenter.segment(image, np.array([[10, 10, 50, 60], [60, 5, 130, 90]], np.float32))
    assert masks.shape == (2, 97, 131) and masks.dtype == bool
    assert iou.shape == (2,)
    empty, _ = segmenter.segment(image, np.zeros((0, 4), np.float32))
    assert empty.shape == (0, 97, 131)


def test_one_image_encoding_for_many_boxes(segmenter, monkeypatch):
    calls = []
    original = segmenter.model.get_image_embeddings
    monkeypatch.setattr(segmenter.model, "get_image_embeddings", lambda pv: calls.append(1) or original(pv))
    boxes = np.array([[i, i, i + 20, i + 30] for i in range(0, 80, 10)], np.float32)
    masks, _ = segmenter.segment(_image(120, 160), boxes)
    assert masks.shape[0] == 8 and len(calls) == 1


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="model folder not found"):
        Owlv2Detector.from_pretrained(str(tmp_path / "nope"), CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a model folder"):
        Sam2ImageSegmenter.from_pretrained(str(tmp_path / "empty"), CPU)
