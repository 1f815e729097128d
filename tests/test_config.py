"""Config: YAML, INI, environment and --set, with errors that name the key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralalchemy.config import (
    Config,
    ConfigError,
    describe,
    load_config,
    parse_set,
    reference_markdown,
)


def test_defaults_are_valid(clean_env):
    cfg = load_config(environ={})
    assert cfg.env == "CartPole-v1"
    assert cfg.reservoir.size == 256
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_yaml_then_env_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("reservoir:\n  size: 300\n  du: 0.4\ntraining:\n  directions: 8\n")
    cfg = load_config(path, environ={})
    assert (cfg.reservoir.size, cfg.reservoir.du, cfg.training.directions) == (300, 0.4, 8)
    cfg = load_config(path, environ={"RESERVOIR_SIZE": "500"})
    assert cfg.reservoir.size == 500
    cfg = load_config(path, environ={"RESERVOIR_SIZE": "500"}, overrides=["reservoir.size=64"])
    assert cfg.reservoir.size == 64
    assert cfg.reservoir.du == 0.4  # untouched keys keep the file's value


def test_ini_form(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[general]\nenv = Acrobot-v1\n[reservoir]\nsize = 128\nprecision = float\n"
                    "[encoder]\nranges = [[-1, 1], [-2, 2]]\n")
    cfg = load_config(path, environ={})
    assert cfg.env == "Acrobot-v1"
    assert cfg.reservoir.size == 128 and cfg.reservoir.precision == "float"
    assert cfg.encoder.ranges == [[-1.0, 1.0], [-2.0, 2.0]]


def test_alchemy_prefix_and_top_level_env_var():
    cfg = load_config(environ={"ALCHEMY_ENV": "Pendulum-v1", "ALCHEMY_RESERVOIR_SEED": "7"})
    assert cfg.env == "Pendulum-v1" and cfg.reservoir.seed == 7


@pytest.mark.parametrize("override, fragment", [
    ("reservoir.sise=5", "reservoir.sise: unknown key"),
    ("reservoir.size=abc", "reservoir.size: expected an integer"),
    ("reservoir.size=0", "reservoir.size: 0 is out of range"),
    ("reservoir.connectivity=0", "reservoir.connectivity: 0.0 is out of range: must be > 0"),
    ("reservoir.du=1.5", "reservoir.du: 1.5 is out of range: must be <= 1"),
    ("reservoir.precision=double", "reservoir.precision: 'double' is not one of fixed, float"),
    ("nosuch.key=1", "nosuch: unknown key"),
    ("training.top_directions=100", "training.top_directions: 100 exceeds"),
    ("encoder.ranges=[[1, 0]]", "encoder.ranges: each entry must be [low, high]"),
    ("reservoir=3", "reservoir: expected a mapping"),
])
def test_errors_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(environ={}, overrides=[override])
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_env_var_errors_name_the_key():
    with pytest.raises(ConfigError, match="reservoir.size: expected an integer"):
        load_config(environ={"RESERVOIR_SIZE": "big"})


@pytest.mark.parametrize("text, fragment", [
    ("reservoir: [1, 2\n", "malformed YAML at line"),
    ("- 1\n- 2\n", "expected a mapping of sections"),
])
def test_malformed_yaml(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(path, environ={})


def test_malformed_ini(tmp_path):
    path = tmp_path / "bad.ini"
    path.write_text("size = 3\n")
    with pytest.raises(ConfigError, match="malformed INI"):
        load_config(path, environ={})


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/c.yaml", environ={})


def test_describe_documents_every_key():
    rows = describe()
    keys = {k for k, _, _ in rows}
    assert {"reservoir.size", "encoder.neurons_per_dim", "training.steps", "env"} <= keys
    assert all(help_text for _, _, help_text in rows)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_set_never_crashes(text):
    """Any --set string either parses or raises a ConfigError (never anything else)."""
    try:
        key, _ = parse_set(text)
    except ConfigError:
        return
    assert key == text.partition("=")[0].strip()


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["size", "du", "seed", "vth", "bogus", "precision"]),
                       st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True),
                                 st.text(max_size=5), st.none(), st.booleans()), max_size=4))
def test_config_reader_fuzz(values):
    """Random sections either validate into a Config or raise one ConfigError line."""
    try:
        cfg = Config.from_dict({"reservoir": values})
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("reservoir")
        return
    assert 1 <= cfg.reservoir.size <= 1_000_000


def test_shipped_configs_match_the_builtin_defaults():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    defaults = load_config(environ={})
    assert load_config(root / "configs" / "cartpole.yaml", environ={}) == defaults
    assert load_config(root / "config.ini", environ={}) == defaults


def test_configuration_reference_lists_every_key():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [key for key, _, _ in describe() if f"`{key}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}; regenerate it with `make docs`"
    assert doc == reference_markdown(), "docs/configuration.md is stale: run `make docs`"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 99), st.integers(-6, 6), st.booleans())
def test_exponent_numbers_parse_from_set_and_yaml(mantissa, exponent, dot):
    # YAML 1.1 reads 1e9 / 3e-4 (no dot) as strings; number fields take them as numbers
    text = f"{mantissa}{'.0' if dot else ''}e{exponent}"
    cfg = load_config(overrides=[f"training.target_return={text}"])
    assert cfg.training.target_return == float(text)


def test_none_is_a_choice_where_the_schema_offers_it():
    from neuralalchemy.config import load_config

    cfg = load_config(None, ["plasticity.rule=none", "exploration.intrinsic=none",
                             "training.init_freeze=none"])
    assert (cfg.plasticity.rule, cfg.exploration.intrinsic, cfg.training.init_freeze) == \
        ("none", "none", "none")
