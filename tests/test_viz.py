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


def test_labels_of_objects_at_the_right_and_top_edges_stay_inside_the_image():
    """The label's background (the object's colour) is drawn in full: moved left / down, not cut off."""
    h, w = 60, 100
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((1, h, w), bool)
    masks[0, 0:20, 90:100] = True  # top-right corner: no room above, none to the right
    res = FrameResult(index=0, time=0.0, size=(h, w), ids=np.array([5]), labels=("yellow square",),
                      class_ids=np.zeros(1, np.int64), scores=np.ones(1, np.float32),
                      boxes=masks_to_boxes(masks), masks=masks)
    out = draw_overlay(image, res)
    label = np.all(out == color_for(5), axis=-1) & ~masks[0]  # label background outside the object
    cols = np.flatnonzero(label.any(axis=0))
    assert cols.size and cols[0] <= w - 60  # shifted left into the image (cut off, it would show nothing here)
    rows = np.flatnonzero(label.any(axis=1))
    assert rows[0] == 0  # at the top: there is no room above the box
