"""End to end on still images: the CLI writes the documented layout with correct sizes, values, JSON."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from skimage import data

from sowlv2.cli import main
from sowlv2.io import rle


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.chelsea()).save(folder / "cat.png")  # 451 x 300, not square
    Image.fromarray(data.astronaut()).resize((160, 120)).save(folder / "img10.jpg")
    Image.fromarray(data.coffee()).resize((90, 140)).save(folder / "img2.png")
    return folder


def _run(tmp_path, tiny_owl, tiny_sam, *args, inp=None, out="out"):
    argv = ["--input", str(inp), "--prompt", "cat", "a dog", "--owl-model", str(tiny_owl),
            "--sam-model", str(tiny_sam), "--device", "cpu", "--output", str(tmp_path / out), "-q", *args]
    return main(argv)


def test_image_run_writes_the_layout(tmp_path, photos, tiny_owl, tiny_sam):
    rc = _run(tmp_path, tiny_owl, tiny_sam, "--threshold", "0", "--max-objects", "3", inp=photos / "cat.png")
    assert rc == 0
    root = tmp_path / "out" / "cat"
    res = json.loads((root / "results.json").read_text())
    assert (res["width"], res["height"], res["kind"]) == (451, 300, "image")
    objs = res["frames"][0]["objects"]
    assert [o["id"] for o in objs] == [1, 2, 3]
    assert sorted(o["score"] for o in objs)[::-1] == [o["score"] for o in objs]
    for o in objs:
        assert o["label"] in ("cat", "a dog")
        label = {"cat": "cat", "a dog": "a_dog"}[o["label"]]
        png = np.asarray(Image.open(root / "binary/frames" / f"000000_obj{o['id']:02d}_{label}_mask.png"))
        assert png.shape == (300, 451) and set(np.unique(png)) <= {0, 255}
        decoded = rle.decode(o["mask"])
        np.testing.assert_array_equal(decoded, png == 255)  # RLE round trip equals the PNG
        assert o["area"] == int(decoded.sum())
        x0, y0, x1, y1 = o["box"]
        assert 0 <= x0 < x1 <= 451 and 0 <= y0 < y1 <= 300
        assert (root / "overlay/frames" / f"000000_obj{o['id']:02d}_{label}_overlay.png").is_file()
    merged = np.asarray(Image.open(root / "binary/merged/000000_merged_mask.png"))
    union = np.any([rle.decode(o["mask"]) for o in objs], axis=0)
    np.testing.assert_array_equal(merged == 255, union)
    overlay = Image.open(root / "overlay/merged/000000_merged_overlay.png")
    assert overlay.size == (451, 300) and overlay.mode == "RGB"
    # COCO: pycocotools loads it and decodes the same masks.
    coco = COCO(str(root / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "a dog"]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == 3
    for a, o in zip(anns, objs):
        np.testing.assert_array_equal(coco.annToMask(a).astype(bool), rle.decode(o["mask"]))
        assert a["bbox"][2] == pytest.approx(o["box"][2] - o["box"][0], abs=0.02)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "done" and run["inputs"]["cat"]["status"] == "done"
    assert run["settings"]["max_objects"] == 3
    assert not list((tmp_path / "out").glob(".*partial"))


@pytest.mark.parametrize("flag, absent", [
    ("--no-binary", ["binary"]),
    ("--no-overlay", ["overlay"]),
    ("--no-merged", ["binary/merged", "overlay/merged"]),
])
def test_no_flags_mean_files_are_never_written(tmp_path, photos, tiny_owl, tiny_sam, flag, absent, monkeypatch):
    written = []
    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: written.append(str(fp)) or
                        original(self, fp, *a, **k))
    assert _run(tmp_path, tiny_owl, tiny_sam, flag, "--threshold", "0", "--max-objects", "2",
                inp=photos / "cat.png") == 0
    root = tmp_path / "out" / "cat"
    assert written, "some PNGs are written"
    for sub in absent:
        assert not (root / sub).exists()
        assert not [w for w in written if f"/{sub}/" in w]  # never written, not written-then-deleted
    assert (root / "results.json").is_file()


def test_folder_of_images_gives_one_result_folder_each_in_natural_order(tmp_path, photos, tiny_owl, tiny_sam):
    assert _run(tmp_path, tiny_owl, tiny_sam, "--threshold", "0", "--max-objects", "1", inp=photos) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert list(run["inputs"]) == ["cat", "img2", "img10"]
    for name, (w, h) in {"img2": (90, 140), "img10": (160, 120)}.items():
        res = json.loads((tmp_path / "out" / name / "results.json").read_text())
        assert (res["width"], res["height"]) == (w, h)


def test_no_detection_is_a_success_with_an_empty_result(tmp_path, photos, tiny_owl, tiny_sam, capsys,
                                                        monkeypatch):
    from sowlv2.models.owlv2 import Owlv2Detector
    from sowlv2.types import Detections

    # Random weights saturate scores at 1.0, so make the detector find nothing.
    monkeypatch.setattr(Owlv2Detector, "detect", lambda self, *a, **k: Detections.empty())
    rc = main(["--input", str(photos / "img2.png"), "--prompt", "cat", "--owl-model", str(tiny_owl),
               "--sam-model", str(tiny_sam), "--device", "cpu", "--output", str(tmp_path / "o"),
               "--threshold", "0.5"])
    assert rc == 0
    assert "nothing found for 'cat'" in capsys.readouterr().out
    res = json.loads((tmp_path / "o" / "img2" / "results.json").read_text())
    assert res["frames"][0]["objects"] == []
    merged = np.asarray(Image.open(tmp_path / "o" / "img2" / "binary/merged/000000_merged_mask.png"))
    assert merged.max() == 0


@pytest.mark.parametrize("args, code, message", [
    (["--input", "{missing}", "--prompt", "cat"], 2, "input: {missing} does not exist"),
    (["--input", "{photo}", "--prompt", "cat", "--threshold", "1.5"], 2, "threshold: must be in [0, 1]"),
    (["--input", "{photo}", "--prompt", "cat", "--threshold", "x"], 2, "expected a number"),
    (["--input", "{photo}"], 2, "prompt: give at least one text prompt"),
    (["--input", "{photo}", "--prompt", ""], 2, "prompt: an empty prompt"),
    (["--input", "{photo}", "--prompt", "cat", "--device", "cuda"], 2, "CUDA is not available"),
    (["--input", "{photo}", "--prompt", "cat", "--owl-model", "{missing}"], 1, "model folder not found"),
    (["--input", "{photo}", "--prompt", "cat", "--bogus"], 2, "unrecognized arguments: --bogus"),
])
def test_cli_errors_are_one_line_with_the_right_exit_code(tmp_path, photos, tiny_owl, tiny_sam, capsys,
                                                          args, code, message):
    fill = {"missing": str(tmp_path / "missing"), "photo": str(photos / "cat.png")}
    args = [a.format(**fill) for a in args]
    base = ["--owl-model", str(tiny_owl), "--sam-model", str(tiny_sam), "--device", "cpu",
            "--output", str(tmp_path / "o"), "-q"]
    rc = main(base + args)  # later flags win, so args may override the tiny models
    err = capsys.readouterr().err.strip()
    assert rc == code
    assert message.format(**fill) in err
    assert len(err.splitlines()) == 1 and err.startswith("sowlv2: error:")
    assert not (tmp_path / "o" / "cat").exists()


def test_non_empty_output_needs_overwrite(tmp_path, photos, tiny_owl, tiny_sam, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert _run(tmp_path, tiny_owl, tiny_sam, inp=photos / "cat.png") == 2
    assert "not empty; use --overwrite" in capsys.readouterr().err
    assert _run(tmp_path, tiny_owl, tiny_sam, "--overwrite", "--threshold", "0", "--max-objects", "1",
                inp=photos / "cat.png") == 0
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"  # nothing the user did not ask for is deleted


def test_console_script_and_module_entry_points(tmp_path, photos, tiny_owl, tiny_sam):
    exe = Path(sys.executable).parent / "sowlv2"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("sowlv2 0.")
    proc = subprocess.run([sys.executable, "-m", "sowlv2", "--input", str(photos / "img2.png"), "--prompt", "cat",
                           "--owl-model", str(tiny_owl), "--sam-model", str(tiny_sam), "--device", "cpu",
                           "--threshold", "0", "--max-objects", "2", "--output", str(tmp_path / "m"), "-q"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((tmp_path / "m/img2/results.json").read_text())["frames"][0]["objects"]) == 2


@pytest.mark.parametrize("progress", [True, False])
def test_the_progress_switch_also_covers_the_model_loading_bars(tiny_owl, tiny_sam, capsys, progress):
    from transformers.utils import logging as hf_logging

    from sowlv2.data.config import PipelineBaseData
    from sowlv2.pipeline import SOWLv2Pipeline

    hf_logging.enable_progress_bar()  # as a library user has it (the CLI turns it off for itself)
    pipe = SOWLv2Pipeline(PipelineBaseData(owl_model=str(tiny_owl), sam_model=str(tiny_sam), device="cpu",
                                           progress=progress))
    assert pipe.detector is not None and pipe.segmenter is not None
    err = capsys.readouterr().err
    assert ("Loading weights" in err) is progress  # transformers' own bar follows the caller's switch
    assert hf_logging.is_progress_bar_enabled()  # and the global setting is restored
