from pathlib import Path

import pytest

from leadscore.pipeline.config import Config, load_config
from leadscore.pipeline.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def test_demo_config_loads_and_matches_defaults_where_it_says_so():
    config = load_config(REPO / "configs" / "demo.yaml")
    assert config.model == Config().model
    assert "disqualify_reason" in config.features.exclude


def test_override_sets_nested_value_and_parses_yaml_types():
    config = load_config(None, ("model.learning_rate=0.2", "features.windows_days=[30, 7]"))
    assert config.model.learning_rate == 0.2
    assert config.features.windows_days == (7, 30)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "model.learnin_rate=0.1",
            "model.learnin_rate: unknown key (expected one of: learning_rate",
        ),
        ("modle.learning_rate=0.1", "modle: unknown key"),
        ("model.learning_rate=fast", "model.learning_rate: Input should be a valid number"),
        ("model.calibration=platt", "model.calibration"),
        ("scoring.grades={A: 0.1, B: 0.5}", "falling thresholds"),
        ("split.valid_lead_fraction=0.6", "below 0.9"),
        ("snapshots.frequency=XYZ", "not a pandas offset alias"),
        ("split.seed=-1", "split.seed"),
        ("model.learning_rate=[1,", "not valid YAML"),
        ("learning_rate", "expected KEY=VALUE"),
    ],
)
def test_bad_values_name_the_key(override, expected):
    with pytest.raises(InputError) as info:
        load_config(None, (override,))
    assert expected in str(info.value)


def test_unknown_key_in_yaml_file_names_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("snapshots:\n  conversion_window: 30\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "snapshots.conversion_window: unknown key" in message
    assert "conversion_window_days" in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)


def test_config_is_frozen():
    config = load_config(None)
    with pytest.raises(Exception, match="frozen"):
        config.model.learning_rate = 1.0  # type: ignore[misc]


def test_an_error_from_an_override_says_so_and_a_file_error_does_not(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  learning_rate: 0.1\n")
    with pytest.raises(InputError) as info:
        load_config(path, ("model.learning_rate=fast",))
    assert "[from --set model.learning_rate=fast]" in str(info.value)
    path.write_text("model:\n  learning_rate: fast\n")
    with pytest.raises(InputError) as info:
        load_config(path, ("model.num_leaves=31",))
    assert "--set" not in str(info.value)
