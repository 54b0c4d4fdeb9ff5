"""Overlays: fill, outline and colours per object, computed on each object's box only."""

import numpy as np
from scipy import ndimage

from sowlv2.types import FrameResult, masks_to_boxes
from sowlv2.viz import color_for, draw_overlay


def _reference(image, masks, ids, alpha=0.45):
    """The plain whole-image definition: blend the fill, paint a 2-pixel outline."""
    out = image.astype(np.float32)
    for m, i in zip(masks, ids):
        c = np.array(color_for(i), np.float32)
        out[m] = out[m] * (1 - alpha) + c * alpha
        out[m & ~ndimage.binary_erosion(m, iterations=2)] = c
    return out


def test_overlay_matches_the_whole_image_definition_outside_the_labels():
    rng = np.random.default_rng(0)
    h, w = 90, 120
    image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    masks = np.zeros((3, h, w), bool)
    masks[0, 40:80, 0:30] = True          # touches the left edge
    masks[1, 50:90, 60:119] = True        # touches the bottom edge
    masks[1, 60:70, 80:90] = False        # a hole
    yy, xx = np.mgrid[:h, :w]
    masks[2] = (yy - 60) ** 2 + (xx - 45) ** 2 < 80
    ids = [1, 7, 3]
    res = FrameResult(index=0, time=0.0, size=(h, w), ids=np.array(ids), labels=("a", "b", "c"),
                      class_ids=np.zeros(3, np.int64), scores=np.ones(3, np.float32),
                      boxes=masks_to_boxes(masks), masks=masks)
    out = draw_overlay(image, res)
    ref = _reference(image, masks, ids)
    keep = np.ones((h, w), bool)
    keep[:40] = False  # labels are drawn above each object's box (all boxes start at row >= 40)
    for b in res.boxes:  # and over the first columns of each box
        keep[:int(b[1]) + 2, int(b[0]):int(b[0]) + 60] = False
    assert keep.sum() > 0.4 * h * w
    assert np.abs(out[keep].astype(np.float32) - ref[keep]).max() <= 1.0  # rounding only
    assert (out[~masks.any(0) & keep] == image[~masks.any(0) & keep]).all()
    np.testing.assert_array_equal(out[89, 70], color_for(7))  # bottom outline pixel of object 7
