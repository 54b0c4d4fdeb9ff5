"""PipelineBaseData validation and the flags > YAML > defaults precedence."""

import pytest

from sowlv2.cli import build_parser, config_from_args
from sowlv2.data.config import PipelineBaseData
from sowlv2.errors import UsageError


def test_defaults_match_the_documented_contract():
    c = PipelineBaseData()
    assert (c.owl_model, c.sam_model) == ("google/owlv2-base-patch16-ensemble", "facebook/sam2.1-hiera-small")
    assert (c.threshold, c.device, c.output, c.detect_every) == (0.1, "auto", "output", 10)


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.5}, "threshold: must be in [0, 1], got 1.5"),
    ({"threshold": -0.1}, "threshold: must be in [0, 1]"),
    ({"threshold": "high"}, "threshold: must be a number"),
    ({"max_objects": 0}, "max_objects: must be at least 1"),
    ({"detect_every": 0}, "detect_every: must be at least 1"),
    ({"dtype": "float64"}, "dtype: must be one of float32, bfloat16, float16"),
    ({"device": "tpu"}, "device: must be auto, cpu, cuda, cuda:N or mps"),
    ({"prompt": ["cat", " "]}, "prompt: an empty prompt"),
    ({"no_binary": "yes"}, "no_binary: must be true or false"),
    ({"fps": 0}, "fps: must be a positive number"),
    ({"keyframe_strategy": "random"}, "keyframe_strategy: must be one of novelty, variance, uniform"),
    ({"overwrite": True, "resume": True}, "overwrite and resume exclude each other"),
])
def test_invalid_values_name_the_key(kwargs, message):
    with pytest.raises(UsageError) as err:
        PipelineBaseData(**kwargs)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_key_is_named():
    with pytest.raises(UsageError, match="unknown key 'treshold'"):
        PipelineBaseData.from_dict({"treshold": 0.3})


def _config(argv):
    return config_from_args(build_parser().parse_args(argv))


def test_yaml_overrides_defaults_and_flags_override_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("threshold: 0.3\nmax-objects: 4\nno_overlay: true\nprompt: [cat, dog]\n")
    c = _config(["--config", str(cfg)])
    assert (c.threshold, c.max_objects, c.no_overlay, c.prompt) == (0.3, 4, True, ["cat", "dog"])
    c = _config(["--config", str(cfg), "--threshold", "0.2", "--prompt", "bus"])
    assert (c.threshold, c.max_objects, c.prompt) == (0.2, 4, ["bus"])


def test_explicit_flag_equal_to_default_still_wins_over_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("threshold: 0.3\n")
    assert _config(["--config", str(cfg), "--threshold", "0.1"]).threshold == 0.1


@pytest.mark.parametrize("text, message", [
    ("threshold: 2\n", "threshold: must be in [0, 1]"),
    ("colour: red\n", "unknown key 'colour'"),
    ("threshold: [0.1\n", "malformed YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("max_objects: 2.5\n", "max_objects: must be a whole number"),
])
def test_bad_yaml_is_a_usage_error(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _config(["--config", str(cfg)])
