"""The other backends (Grounding DINO, MM Grounding DINO, OmDet-Turbo, SAM 3 detectors; EdgeTAM and
SAM 3 trackers) through the real transformers classes, tiny random checkpoints saved with
save_pretrained and loaded by folder through the registry.

Random weights: these tests assert plumbing (labels, boxes in original pixels, thresholds, which
prompt a box maps to, bounded tracker state, outputs of a full run), never detection quality.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sowlv2.cli import main
from sowlv2.errors import ModelLoadError
from sowlv2.models import random_backends as rb
from sowlv2.models import registry
from sowlv2.models.grounding_dino import build_caption, token_map
from sowlv2.types import Frame

CPU = torch.device("cpu")
H, W = 97, 131  # non-square, odd on purpose
BOX_A = np.array([10, 12, 60, 50], np.float32)
BOX_B = np.array([50, 20, 125, 90], np.float32)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a busy shared CPU, 2 threads spin-waiting on each other made a tiny
    tracker step 2.5 s instead of 0.13 s (measured here); results do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def folders(tmp_path_factory, tiny_owl, tiny_sam):
    """Tiny random checkpoints of every backend, by short name."""
    root = tmp_path_factory.mktemp("backends")
    return {
        "owlv2": tiny_owl,
        "sam2": tiny_sam,
        "gdino": rb.build_grounding_dino(root / "gdino"),
        "mmgdino": rb.build_grounding_dino(root / "mmgdino", mm=True),
        "omdet": rb.build_omdet_turbo(root / "omdet"),
        "edgetam": rb.build_edgetam(root / "edgetam"),
        "sam3": rb.build_sam3(root / "sam3"),
    }


def _image(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------- registry

@pytest.mark.parametrize("name,role,cls", [
    ("gdino", "detector", "GroundingDinoDetector"), ("mmgdino", "detector", "MMGroundingDinoDetector"),
    ("omdet", "detector", "OmDetTurboDetector"), ("sam3", "detector", "Sam3Detector"),
    ("edgetam", "tracker", "EdgeTamVideoTracker"), ("edgetam", "segmenter", "EdgeTamImageSegmenter"),
    ("sam3", "tracker", "Sam3VideoTracker"), ("sam3", "segmenter", "TrackerImageSegmenter")])
def test_registry_picks_the_adapter_by_model_type(folders, name, role, cls):
    adapter = registry.load(role, str(folders[name]), CPU)
    assert type(adapter).__name__ == cls


def test_unsupported_model_type_lists_the_supported_ones(folders):
    with pytest.raises(ModelLoadError) as err:
        registry.load("tracker", str(folders["gdino"]), CPU)
    msg = str(err.value)
    assert "'grounding-dino'" in msg
    for kind in ("sam2_video", "edgetam_video", "sam3_video"):
        assert kind in msg


def test_missing_package_names_what_to_install(folders, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    for name, role in (("edgetam", "tracker"), ("omdet", "detector")):
        with pytest.raises(ModelLoadError, match="pip install timm"):
            registry.load(role, str(folders[name]), CPU)


# ---------------------------------------------------------------------------- Grounding DINO prompt mapping

def test_caption_spans_and_token_map_separate_shared_words():
    caption, spans = build_caption(["Car", "red car", "a.b"])
    assert caption == "car. red car. a b."  # a "." inside a prompt would split the phrase
    assert [caption[s:e] for s, e in spans] == ["car", "red car", "a b"]
    # BERT offsets of: [CLS] car . red car . a b . [SEP]
    offsets = [(0, 0), (0, 3), (3, 4), (5, 8), (9, 12), (12, 13), (14, 15), (16, 17), (17, 18), (0, 0)]
    pos = token_map(offsets, spans, 12)
    assert pos.shape == (3, 12)
    assert pos[0].nonzero().flatten().tolist() == [1]          # "car" alone: not the "car" of "red car"
    assert pos[1].nonzero().flatten().tolist() == [3, 4]
    assert pos[2].nonzero().flatten().tolist() == [6, 7]
    assert torch.allclose(pos.sum(1), torch.ones(3))           # a mean over each prompt's tokens


@pytest.mark.parametrize("name", ["gdino", "mmgdino"])
def test_grounding_dino_maps_each_box_to_the_prompt_whose_tokens_fire(folders, name, monkeypatch):
    det = registry.load("detector", str(folders[name]), CPU)
    prompts = ["car", "red car", "a.b"]
    det.set_prompts(prompts)
    (car,) = det._map[0].nonzero().flatten().tolist()
    red, car2 = det._map[1].nonzero().flatten().tolist()
    ab = det._map[2].nonzero().flatten().tolist()
    probs = torch.zeros(5, det._map.shape[1])
    probs[0, car] = 0.9                          # the word "car" of prompt 0 only -> "car"
    probs[1, [red, car2]], probs[1, car] = 0.8, 0.7  # "red" and "car" of "red car" -> "red car"
    probs[2, ab] = 0.6                           # both halves of "a b" -> "a.b", the user's text
    probs[3, red] = 0.05                         # below the threshold
    probs[4, [car, car2]], probs[4, red] = 0.9, 0.1  # every "car" but a cold "red" -> "car"
    boxes = torch.tensor([[0.2, 0.3, 0.2, 0.2], [0.6, 0.5, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9],
                          [0.5, 0.5, 0.1, 0.1], [0.4, 0.4, 0.2, 0.2]])
    monkeypatch.setattr(det, "forward", lambda image: (probs, boxes))
    dets = det.detect(_image(), prompts, threshold=0.3, nms_iou=1.0)
    assert dets.labels == ("car", "car", "red car", "a.b") and dets.class_ids.tolist() == [0, 0, 1, 2]
    np.testing.assert_allclose(dets.scores, [0.9, 0.9, 0.8, 0.6], rtol=1e-6)
    # normalised (cx, cy, w, h) of the image -> pixels of the non-square image
    first = dets.boxes[np.isclose(dets.boxes[:, 0], 0.1 * W)]
    np.testing.assert_allclose(first[0], [0.1 * W, 0.2 * H, 0.3 * W, 0.4 * H], rtol=1e-5)
    np.testing.assert_allclose(dets.boxes[3], [0.05 * W, 0.05 * H, 0.95 * W, 0.95 * H], rtol=1e-5)


# ---------------------------------------------------------------------------- each detector alone

@pytest.mark.parametrize("name", ["gdino", "mmgdino", "omdet", "sam3"])
def test_detector_labels_boxes_and_threshold(folders, name):
    det = registry.load("detector", str(folders[name]), CPU)
    prompts = ["car", "red car", "a.b"]
    img = _image(1)
    every = det.detect(img, prompts, threshold=0.0, nms_iou=1.0)
    assert len(every) > 0 and every.boxes.dtype == np.float32 and every.boxes.shape == (len(every), 4)
    assert set(every.labels) <= set(prompts)
    assert all(prompts[c] == lab for c, lab in zip(every.class_ids, every.labels))
    assert np.all(np.diff(every.scores) <= 0)  # sorted by score
    b = every.boxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 2] <= W) and np.all(b[:, 1] >= 0) and np.all(b[:, 3] <= H)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    cut = float(np.median(every.scores))
    above = det.detect(img, prompts, threshold=cut, nms_iou=1.0)
    assert 0 < len(above) < len(every) or cut == every.scores.min()
    assert np.all(above.scores >= cut)
    assert len(det.detect(img, prompts, threshold=0.0, nms_iou=1.0, max_objects=2)) == 2
    assert len(det.detect(img, prompts, threshold=0.0, nms_iou=0.01)) <= len(every)


@pytest.mark.parametrize("name", ["gdino", "omdet", "sam3"])
def test_detector_shrinks_huge_images_and_maps_boxes_back(folders, name, monkeypatch):
    det = registry.load("detector", str(folders[name]), CPU)
    side = det.input_side
    big = np.asarray(Image.fromarray(_image(2)).resize((side * 5, side * 3)))
    seen = []
    original = det.processor.image_processor.__call__

    def spy(*args, images=None, **kw):
        seen.append(np.asarray(images).shape[:2])
        return original(*args, images=images, **kw)

    monkeypatch.setattr(det.processor, "image_processor", type("P", (), {"__call__": staticmethod(spy),
                                                                         "size": det.processor.image_processor.size})())
    dets = det.detect(big, ["car"], threshold=0.0, nms_iou=1.0)
    assert max(seen[0]) == 2 * side  # shrunk to twice the input side before preprocessing
    assert dets.boxes[:, 2].max() > 2 * side or dets.boxes[:, 3].max() > side  # boxes in the big image's pixels


@pytest.mark.parametrize("gdino", ["gdino", "mmgdino"])
def test_text_is_encoded_once_per_prompt_set(folders, gdino):
    gd = registry.load("detector", str(folders[gdino]), CPU)
    s3 = registry.load("detector", str(folders["sam3"]), CPU)
    for _ in range(3):
        gd.detect(_image(), ["car", "dog"])
        s3.detect(_image(), ["car", "dog"])
    assert gd.text_cache.runs == 1 and gd.calls == 3 and s3.text_encodings == 1 and s3.calls == 3
    gd.detect(_image(), ["cat"])
    s3.detect(_image(), ["cat"])
    assert gd.text_cache.runs == 2 and s3.text_encodings == 2


# ---------------------------------------------------------------------------- trackers

def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield Frame(index=i, time=i / 25, image=rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


@pytest.mark.parametrize("name", ["edgetam", "sam3"])
def test_tracker_state_is_bounded_over_50_frames(folders, name):
    tracker = registry.load("tracker", str(folders[name]), CPU)
    tracker.reset()
    prompts = {0: {1: BOX_A}, 2: {2: BOX_B}, 4: {1: BOX_B}}  # all prompts leave every window by frame 20
    sizes, outs = {}, {}
    for f in _frames(50):
        out = tracker.track(f)
        if f.index == 5:
            masks = tracker.masks_for_boxes(np.stack([BOX_A, BOX_B]), f)
            assert masks.shape == (2, H, W) and masks.dtype == np.bool_
        out |= tracker.prompt(prompts.get(f.index, {}), f)
        sizes[f.index], outs[f.index] = tracker.state_size(), out
    assert sorted(outs[49]) == [1, 2] and outs[49][1].mask.shape == (H, W) and outs[49][1].mask.dtype == np.bool_
    s20, s50 = sizes[20], sizes[49]
    assert s20["frames"] == s50["frames"] == 1 and s50["vision_features"] == 1
    for key in ("objects", "cond_outputs", "non_cond_outputs", "memory_outputs", "tracked_marks", "prompt_inputs"):
        assert s50[key] == s20[key], key
    assert s50["tensor_bytes"] <= s20["tensor_bytes"] * 1.01
    tracker.remove([2])
    assert tracker.object_ids == [1]


def test_sam3_detector_and_tracker_share_one_image_encoding(folders):
    det = registry.load("detector", str(folders["sam3"]), CPU)
    tracker = registry.load("tracker", str(folders["sam3"]), CPU)
    assert tracker.model.vision_encoder.backbone is det.model.vision_encoder.backbone  # one copy of the ViT
    backbone = det.backbone
    tracker.reset()
    frames = list(_frames(3))
    runs0 = backbone.runs
    tracker.track(frames[0])                       # no object yet: the tracker stores the frame only
    dets = det.detect(frames[0].image, ["car"], threshold=0.0, max_objects=2)
    tracker.masks_for_boxes(dets.boxes, frames[0])  # the tracker's encoding reuses the detector's
    tracker.prompt({1: dets.boxes[0]}, frames[0])
    assert backbone.runs - runs0 == 1 and backbone.hits >= 1
    tracker.track(frames[1])                       # an object: the tracker encodes frame 1
    det.detect(frames[1].image, ["car"], threshold=0.0)  # a key frame: the detector reuses it
    assert backbone.runs - runs0 == 2


@pytest.mark.parametrize("name", ["edgetam", "sam3"])
def test_image_segmenter_masks_every_box(folders, name):
    seg = registry.load("segmenter", str(folders[name]), CPU)
    masks, scores = seg.segment(_image(3), np.stack([BOX_A, BOX_B]))
    assert masks.shape == (2, H, W) and masks.dtype == np.bool_ and scores.shape == (2,)
    assert masks.any(axis=(1, 2)).all()
    empty, _ = seg.segment(_image(3), np.zeros((0, 4), np.float32))
    assert empty.shape == (0, H, W)


# ---------------------------------------------------------------------------- end to end through the CLI

def _clip(path, frames=6, size=(99, 71)):
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = w, h, "yuv444p"
        for t in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[10:30, 5 + t:25 + t] = (230, 40, 40)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.mark.parametrize("detector", ["owlv2", "gdino", "mmgdino", "omdet", "sam3"])
@pytest.mark.parametrize("tracker", ["sam2", "edgetam", "sam3"])
def test_every_detector_tracker_pair_end_to_end(tmp_path, folders, detector, tracker):
    clip = _clip(tmp_path / "clip.mkv")
    out = tmp_path / "out"
    rc = main(["--input", str(clip), "--prompt", "square", "red square", "--detector", str(folders[detector]),
               "--tracker", str(folders[tracker]), "--device", "cpu", "--threshold", "0", "--max-objects", "2",
               "--detect-every", "3", "--output", str(out), "-q"])
    assert rc == 0
    root = out / "clip"
    res = json.loads((root / "results.json").read_text())
    assert res["kind"] == "video" and len(res["frames"]) == 6 and res["keyframes"] == [0, 3]
    assert res["stats"]["detector_calls"] == 2
    ids = {o["id"] for f in res["frames"] for o in f["objects"]}
    assert ids and {t["id"] for t in res["tracks"]} == ids
    assert {o["label"] for f in res["frames"] for o in f["objects"]} <= {"square", "red square"}
    for f in res["frames"]:
        for o in f["objects"]:
            assert o["mask"]["size"] == [71, 99]
            (png,) = (root / "binary/frames").glob(f"{f['index']:06d}_obj{o['id']:02d}_*_mask.png")
            assert (np.asarray(Image.open(png)) == 255).sum() == o["area"] > 0
    vis = json.loads((root / "annotations.json").read_text())
    assert [c["name"] for c in vis["categories"]] == ["square", "red square"]
    assert {a["id"] for a in vis["annotations"]} == ids
    assert (root / "video" / "overlay.mp4").stat().st_size > 0


# ---------------------------------------------------------------------------- benchmark section

def test_backend_bench_measures_every_backend_and_writes_a_report(tmp_path):
    from sowlv2.bench_backends import run_backend_bench, write_report

    lines = []
    res = run_backend_bench(size="tiny", detectors=("grounding-dino", "omdet-turbo"),
                            trackers=("sam2-hiera-tiny", "edgetam"), steps=1, memory=False, log=lines.append)
    assert set(res["detectors"]) == {"grounding-dino", "omdet-turbo"} and len(lines) == 4
    for d in res["detectors"].values():
        assert d["seconds_per_image"] > 0 and d["params_m"] > 0
    for t in res["trackers"].values():
        assert t["step_1obj_s"] > 0 and t["step_2obj_s"] > 0
    ratio = res["trackers"]["edgetam"]["step_2obj_s"] / res["trackers"]["sam2-hiera-tiny"]["step_2obj_s"]
    assert res["edgetam_vs_sam2_2obj"] == pytest.approx(ratio, abs=1e-3)
    js, md = write_report(res, tmp_path, "cmd")
    assert json.loads(js.read_text())["detectors"] == res["detectors"]
    text = md.read_text()
    assert "| grounding-dino |" in text and "| edgetam |" in text and "`cmd`" in text


def test_sam3_pair_in_the_pipeline_encodes_each_frame_once(folders):
    """--detector X --tracker X with a SAM 3 checkpoint: the ViT runs once per frame, key frames included."""
    from sowlv2.data.config import PipelineBaseData
    from sowlv2.pipeline import SOWLv2Pipeline

    det = registry.load("detector", str(folders["sam3"]), CPU)
    trk = registry.load("tracker", str(folders["sam3"]), CPU)
    pipe = SOWLv2Pipeline(PipelineBaseData(device="cpu", detect_every=3, threshold=0.0, max_objects=2,
                                           progress=False), detector=det, tracker=trk, device="cpu")
    before = det.backbone.runs
    results = list(pipe.track(list(_frames(6)), ["car"]))
    assert len(results) == 6 and pipe.last_run.detector_calls == 2 and any(len(r.ids) for r in results)
    assert det.backbone.runs - before == 6  # without sharing: 6 tracker encodings + 2 detector encodings


@pytest.mark.parametrize("detector,tracker", [("gdino", "edgetam"), ("omdet", "sam3"), ("sam3", "sam3")])
def test_image_end_to_end_with_the_new_segmenters(tmp_path, folders, detector, tracker):
    from pycocotools.coco import COCO

    from sowlv2.io import rle

    Image.fromarray(_image(4, 90, 121)).save(tmp_path / "photo.png")
    rc = main(["--input", str(tmp_path / "photo.png"), "--prompt", "cat", "a dog", "--detector", str(folders[detector]),
               "--tracker", str(folders[tracker]), "--device", "cpu", "--threshold", "0", "--max-objects", "2",
               "--output", str(tmp_path / "out"), "-q"])
    assert rc == 0
    root = tmp_path / "out" / "photo"
    res = json.loads((root / "results.json").read_text())
    objs = res["frames"][0]["objects"]
    assert len(objs) == 2 and {o["label"] for o in objs} <= {"cat", "a dog"}
    coco = COCO(str(root / "annotations.json"))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    for a, o in zip(anns, objs, strict=True):
        mask = rle.decode(o["mask"])
        assert mask.shape == (90, 121) and mask.sum() == o["area"] > 0
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), mask)
