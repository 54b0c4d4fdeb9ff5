"""Models chosen by their checkpoint's model_type: fake backends registered against the protocols run
through the CLI; unsupported types, missing packages, both spellings of a flag and an unreachable hub
are one clear line each."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fakes import walking_world
from PIL import Image

from sowlv2.cli import main
from sowlv2.errors import ModelLoadError
from sowlv2.io import rle
from sowlv2.models import registry
from sowlv2.models.registry import Backend


def _checkpoint(folder, model_type):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


@pytest.fixture
def fake_backends(monkeypatch):
    monkeypatch.setattr(registry, "BACKENDS", list(registry.BACKENDS))
    registry.register(Backend("detector", ("fake_detector",), "fakes:load_detector"))
    registry.register(Backend("tracker", ("fake_tracker",), "fakes:load_tracker"))
    registry.register(Backend("segmenter", ("fake_tracker",), "fakes:load_segmenter"))


@pytest.fixture
def frames_dir(tmp_path):
    world = walking_world()
    folder = tmp_path / "walk"
    folder.mkdir()
    for t in range(12):
        Image.fromarray(world.image(t)).save(folder / f"{t:04d}.png")
    return folder


def test_registered_fake_backends_run_through_the_cli(tmp_path, fake_backends, frames_dir):
    det = _checkpoint(tmp_path / "det", "fake_detector")
    trk = _checkpoint(tmp_path / "trk", "fake_tracker")
    out = tmp_path / "out"
    rc = main(["-i", str(frames_dir), "--frames", "-p", "square", "disc", "--detector", str(det),
               "--tracker", str(trk), "-o", str(out), "--detect-every", "4", "-q", "--device", "cpu"])
    assert rc == 0
    res = json.loads((out / "walk/results.json").read_text())
    world = walking_world()
    assert res["keyframes"] == [0, 4, 8]
    for frame in res["frames"]:
        t = frame["index"]
        labels = {o["label"]: o for o in frame["objects"]}
        # the disc appears at frame 5 and is found at the next key frame, 8; the fakes are exact
        assert set(labels) == ({"square", "disc"} if t >= 8 else {"square"})
        for label, obj in labels.items():
            np.testing.assert_array_equal(rle.decode(obj["mask"]), world.masks(t)[label])
    assert {t["label"]: t["id"] for t in res["tracks"]} == {"square": 1, "disc": 2}


def test_an_image_through_the_registered_segmenter(tmp_path, fake_backends, frames_dir):
    det = _checkpoint(tmp_path / "det", "fake_detector")
    trk = _checkpoint(tmp_path / "trk", "fake_tracker")
    rc = main(["-i", str(frames_dir / "0006.png"), "-p", "disc", "--detector", str(det), "--tracker", str(trk),
               "-o", str(tmp_path / "out"), "-q", "--device", "cpu"])
    assert rc == 0
    (obj,) = json.loads((tmp_path / "out/0006/results.json").read_text())["frames"][0]["objects"]
    np.testing.assert_array_equal(rle.decode(obj["mask"]), walking_world().masks(6)["disc"])


@pytest.mark.parametrize(("flags", "code", "message"), [
    (["--detector", "{bert}"], 1, "is a 'bert' model, which SOWLv2 cannot use as a detector; supported model "
                                  "types: "),
    (["--detector", "{owl}", "--tracker", "{bert}"], 1, "cannot use as a segmenter; supported model types: "),
    (["--detector", "{bert}", "--owl-model", "{bert}"], 2, "detector and owl_model name the same setting"),
])
def test_bad_model_choices_are_one_line(tmp_path, capsys, frames_dir, tiny_owl, flags, code, message):
    bert = _checkpoint(tmp_path / "bert", "bert")
    args = [f.format(bert=bert, owl=tiny_owl) for f in flags]
    rc = main(["-i", str(frames_dir / "0000.png"), "-p", "square", "-o", str(tmp_path / "o"), "--device", "cpu",
               "-q", *args])
    err = capsys.readouterr().err.strip()
    assert rc == code and len(err.splitlines()) == 1, err
    assert message in err
    if code == 1:  # the list names every registered type of the role
        role = "detector" if "as a detector" in message else "segmenter"  # an image: boxes -> masks
        assert err.split("supported model types: ")[1].split(", ") == registry.supported(role)
        assert ("owlv2" if role == "detector" else "sam2_video") in registry.supported(role)
    assert not (tmp_path / "o").exists()


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "BACKENDS", list(registry.BACKENDS))
    registry.register(Backend("detector", ("needs_pkg",), "fakes:load_detector", requires=("no_such_pkg_xyz",)))
    with pytest.raises(ModelLoadError, match=r"needs the package\(s\) no_such_pkg_xyz: pip install no_such_pkg_xyz"):
        registry.load("detector", str(_checkpoint(tmp_path / "d", "needs_pkg")), "cpu")


def test_an_unreachable_hub_fails_within_seconds(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from sowlv2.models import loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setattr(loading, "_HUB_REACHABLE", {})
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"could not download 'someorg/somemodel': the Hugging Face hub "
                                              r"\(127.0.0.1\) cannot be reached.*local folder.*HF_HUB_OFFLINE=1"):
        registry.load("detector", "someorg/somemodel", "cpu")
    assert time.perf_counter() - t0 < 10


def test_offline_and_not_cached_says_so(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        registry.load("tracker", "someorg/somemodel", "cpu")


def test_a_transformers_session_without_the_pruned_fields_is_a_load_error():
    from sowlv2.models.sam2_video import check_session

    class Session:
        obj_ids = output_dict_per_obj = frames_tracked_per_obj = point_inputs_per_obj = mask_inputs_per_obj = []
        processed_frames = None
        cache = object()  # no _vision_features

    with pytest.raises(ModelLoadError, match=r"transformers \S+ changed the video session.*cache._vision_features"):
        check_session(Session())
