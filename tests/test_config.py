from pathlib import Path

import pytest

from dexvision.config import CONFIG_DIR, ConfigError, load_config, to_dict
from dexvision.render.sample import DataConfig


def test_shipped_yaml_matches_the_defaults():
    # configs/data.yaml documents the defaults; it must not drift from the code.
    assert to_dict(load_config(DataConfig, CONFIG_DIR / "data.yaml")) == to_dict(DataConfig())


def test_overrides_are_typed_and_nested():
    cfg = load_config(DataConfig, None, ["render.image_size=64", "render.randomization.lighting.count=[2, 3]",
                                         "task=gimbal-block"])
    assert cfg.render.image_size == 64
    assert cfg.render.randomization.lighting.count == (2, 3)
    assert cfg.task == "gimbal-block"


@pytest.mark.parametrize("override, message", [
    ("render.foo=1", "unknown config key 'render.foo'"),
    ("render.image_size=big", "render.image_size: expected an integer"),
    ("render.image_size=2", "image_size must be within"),
    ("render.randomization.lighting.intensity=[3, 1]", "has low > high"),
    ("render.randomization.post.gamma=1.0", "expected a range [low, high]"),
    ("task=cube", "unknown task 'cube'"),
    ("render.randomization.appearance.floor_patterns=[plaid]", "unknown ['plaid']"),
    ("sampler.max_attempts=0", "max_attempts must be >= 1"),
    ("noequals", "must look like key.sub=value"),
])
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(DataConfig, None, [override])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_yaml_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(DataConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("render: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(DataConfig, bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(DataConfig, scalar)


def test_a_missing_required_key_is_named():
    import dataclasses as dc

    from dexvision.config import ConfigError, from_dict

    @dc.dataclass
    class Needs:
        title: str
        count: int = 1

    with pytest.raises(ConfigError, match="missing config key 'title'"):
        from_dict(Needs, {"count": 2})
