"""``alchemy tune``: worker processes sharing one store, failed and pruned trials, the grid,
the exported configuration, one-line errors, the search-space parser (fuzzed), and CartPole end
to end with a tiny budget."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from clihelp import alchemy, assert_one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuralalchemy.cli import main
from neuralalchemy.cli_tune import export_best
from neuralalchemy.config import Config, ConfigError, load_config
from neuralalchemy.tune import (
    Objective,
    Plan,
    parse_param,
    parse_spec,
    register_objective,
    run_study,
)

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"reservoir.spectral_radius": {"type": "float", "low": 0.5, "high": 1.5},
         "training.step_size": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}


def plan_for(tmp_path: Path, raw: dict, name: str = "s", storage: str | None = None) -> Plan:
    base = Config().to_dict()
    return Plan(name, storage, tmp_path / "tune" / name, parse_spec(raw, base), base)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


@register_objective("test-fails-on-1", "minimize", "raises in trial 1")
def _fails_on_1(cfg, run):
    if run.number == 1:
        raise RuntimeError("boom in training")
    return cfg.reservoir.spectral_radius


@register_objective("test-bad-trial-3", "minimize", "trial 3 reports far worse values")
def _bad_trial_3(cfg, run):
    value = 100.0 if run.number == 3 else 1.0 - 0.01 * run.number
    for step in range(4):
        run.report(value, step)
    return value


PLUGIN = Objective("plugin", "maximize", lambda cfg, run: cfg.reservoir.spectral_radius,
                   "an objective outside the registry, named as test_tune:PLUGIN")


# ---------------------------------------------------------------- one store, several processes
@pytest.mark.parametrize("store, n", [("journal", 8), ("sqlite", 4)])
def test_two_worker_processes_share_one_store(tmp_path, store, n):
    url = f"sqlite:///{tmp_path / 'study.db'}" if store == "sqlite" else None
    plan = plan_for(tmp_path, {"objective": "synthetic", "seed": 0, "pruner": "none",
                               "space": SPACE}, storage=url)
    study, codes = run_study(plan, n, workers=2, poll_s=0.1)
    assert codes == [0, 0]
    trials = optuna.load_study(study_name="s", storage=study._storage).trials
    assert sorted(t.number for t in trials) == list(range(n))   # none lost, none duplicated
    assert {t.state.name for t in trials} == {"COMPLETE"}
    workers = [t.user_attrs["worker"] for t in trials]
    assert sorted(workers.count(w) for w in set(workers)) == [n // 2] * 2  # two processes
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path):
    plan = plan_for(tmp_path, {"objective": "test-fails-on-1", "sampler": "random", "seed": 1,
                               "space": SPACE})
    study, _ = run_study(plan, 4)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    failed = study.trials[1]
    assert failed.user_attrs["error"] == "RuntimeError: boom in training"


def test_pruning_stops_a_clearly_bad_trial(tmp_path):
    plan = plan_for(tmp_path, {"objective": "test-bad-trial-3", "sampler": "random", "seed": 0,
                               "pruner": {"type": "median", "startup_trials": 3,
                                          "warmup_steps": 0}, "space": SPACE})
    study, _ = run_study(plan, 5)
    assert states(study) == ["COMPLETE"] * 3 + ["PRUNED", "COMPLETE"]
    assert study.trials[3].intermediate_values == {0: 100.0}


def test_grid_sampler_covers_the_grid_exactly(tmp_path):
    space = {"reservoir.size": {"type": "int", "low": 32, "high": 96, "step": 32},
             "readout.features": {"type": "categorical", "choices": ["counts", "trace"]},
             "exploration.noise": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01}}
    plan = plan_for(tmp_path, {"objective": "synthetic", "sampler": "grid", "space": space})
    study, _ = run_study(plan, 50)      # the grid sampler stops the study when it is exhausted
    seen = [(t.params["reservoir.size"], t.params["readout.features"],
             t.params["exploration.noise"]) for t in study.trials]
    grid = list(itertools.product([32, 64, 96], ["counts", "trace"], [0.01, 0.02, 0.03]))
    assert len(seen) == len(grid) and sorted(seen) == sorted(grid)


def test_exported_best_config_loads_and_holds_the_best_params(tmp_path):
    plan = plan_for(tmp_path, {"objective": "synthetic", "sampler": "tpe", "seed": 3,
                               "space": {**SPACE, "readout.features": {
                                   "type": "categorical", "choices": ["counts", "trace"]}}})
    study, _ = run_study(plan, 6)
    path = export_best(plan, study.best_trial, tmp_path / "best.yaml")
    cfg = load_config(path)
    best = study.best_trial.params
    assert cfg.reservoir.spectral_radius == best["reservoir.spectral_radius"]
    assert cfg.training.step_size == best["training.step_size"]
    assert cfg.readout.features == best["readout.features"]
    assert cfg.reservoir.size == Config().reservoir.size   # everything else from the base


def test_objective_named_by_module_and_attribute(tmp_path):
    plan = plan_for(tmp_path, {"objective": "test_tune:PLUGIN", "seed": 0, "space": SPACE})
    study, _ = run_study(plan, 2)
    assert study.direction.name == "MAXIMIZE"
    assert [t.value for t in study.trials] == [t.params["reservoir.spectral_radius"]
                                               for t in study.trials]
    with pytest.raises(ConfigError, match="tune.objective: 'os:path' is not a neuralalchemy"):
        parse_spec({"objective": "os:path"})


# ---------------------------------------------------------------- one-line errors (exit 2)
BAD_SPACE = """
tune:
  space:
    reservoir.spectral_radius: {type: float, low: fast, high: 1.5}
"""


@pytest.mark.parametrize("args, fragment", [
    (["--sampler", "sobol"], "tune.sampler: 'sobol' is not one of tpe, gp, grid, random"),
    (["--objective", "nope"], "tune.objective: unknown objective 'nope'"),
    (["--pruner", "sometimes"], "tune.pruner: 'sometimes' is not one of"),
    (["--config", "bad.yaml"], "tune.space.reservoir.spectral_radius.low: expected a number"),
    (["--set", "tune.space.reservoir.bogus.type=categorical",
      "--set", "tune.space.reservoir.bogus.choices=[1, 2]"],
     "tune.space.reservoir.bogus: not a configuration key"),
    (["--set", "tune.space.reservoir.size.type=int"], "tune.space.reservoir.size.low: required"),
    (["--set", "tune.colour=red"], "tune.colour: unknown key"),
    (["--set", "tune.space.reservoir.size.type=float", "--set", "tune.space.reservoir.size.low=8",
      "--set", "tune.space.reservoir.size.high=64"], "reservoir.size is an integer key"),
    (["--storage", "nosuchdb://host/x"],
     "--storage nosuchdb://host/x: cannot open the store (Can't load plugin"),
    (["--storage", "sqlite:////no/such/folder/x.db"],
     "cannot open the store (unable to open database file)"),
    (["--storage", "postgresql://user:secret@127.0.0.1:9/db"], "--storage postgresql://user:***@"),
    (["--study", "a b"], "--study 'a b'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(BAD_SPACE)
    assert main(["tune", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert "secret" not in err[0]
    assert not (tmp_path / "experiments" / "tune" / "tune" / "trials").exists()


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    assert_one_line_error(alchemy("tune", "--sampler", "sobol", cwd=tmp_path), "tune.sampler")


# ---------------------------------------------------------------- the parser, fuzzed
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=6), st.sampled_from(["1e-3", "float", "int", "categorical"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
ENTRY_KEYS = st.one_of(st.sampled_from(["type", "low", "high", "log", "step", "choices"]),
                       st.text(max_size=5))
ENTRIES = st.one_of(VALUES, st.dictionaries(ENTRY_KEYS, VALUES, max_size=6), st.fixed_dictionaries(
    {"type": st.sampled_from(["float", "int", "categorical"])},
    optional={"low": SCALARS, "high": SCALARS, "log": SCALARS, "step": SCALARS,
              "choices": st.lists(SCALARS, max_size=5)}))
SPACE_KEYS = st.one_of(st.sampled_from(["reservoir.size", "training.step_size",
                                        "readout.features", "exploration.thompson", "env"]),
                       st.text(min_size=1, max_size=12))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=SPACE_KEYS, entry=ENTRIES, sampler=st.sampled_from(["tpe", "grid", "gp"]))
def test_malformed_space_entries_name_their_key(key, entry, sampler):
    try:
        spec = parse_spec({"sampler": sampler, "space": {key: entry}}, Config().to_dict())
    except ConfigError as exc:
        assert f"tune.space.{key}" in str(exc)
        return
    (param,) = spec.space
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # Optuna takes every accepted space as it is
        study = optuna.create_study(sampler=spec.sampler_for(0))
        trial = study.ask()
        assert param.suggest(trial) is not None or param.kind == "categorical"


@settings(max_examples=100, deadline=None)
@given(raw=st.dictionaries(st.sampled_from(["objective", "direction", "sampler", "trials", "seed",
                                            "pruner", "space", "bogus"]), VALUES, max_size=5))
def test_malformed_tune_sections_are_config_errors(raw):
    try:
        parse_spec(raw, Config().to_dict())
    except ConfigError as exc:
        assert str(exc).startswith("tune")


def test_shipped_config_serves_train_and_tune():
    path = ROOT / "configs" / "tune_cartpole.yaml"
    cfg = load_config(path)                        # `alchemy train` skips the tune section
    spec = parse_spec(yaml.safe_load(path.read_text())["tune"], cfg.to_dict())
    assert cfg.reservoir.size == 64 and spec.objective == "return"
    assert [p.key for p in spec.space] == ["training.step_size", "reservoir.spectral_radius",
                                           "reservoir.input_scale"]


def test_good_entries_parse():
    p = parse_param("training.step_size", {"type": "float", "low": "1e-3", "high": 0.1,
                                           "log": True})
    assert (p.low, p.high, p.log) == (0.001, 0.1, True)
    assert parse_param("reservoir.size", {"type": "int", "low": 32, "high": 128,
                                          "step": 32}).grid() == [32, 64, 96, 128]


# ---------------------------------------------------------------- training objectives
TINY = {"reservoir": {"size": 32}, "encoder": {"calibration_episodes": 2},
        "training": {"steps": 1500, "eval_episodes": 4, "eval_every": 2, "target_return": 30.0}}


def test_steps_to_threshold_objective(tmp_path):
    base = Config.from_dict(TINY).to_dict()
    spec = parse_spec({"objective": "steps", "sampler": "random", "seed": 0, "pruner": "none",
                       "space": {"training.step_size": {"type": "categorical",
                                                       "choices": [0.05, 1e-6]}}}, base)
    study, _ = run_study(Plan("steps", None, tmp_path, spec, base), 2)
    assert study.direction.name == "MINIMIZE" and states(study) == ["COMPLETE"] * 2
    for t in study.trials:
        solved, steps = t.user_attrs["solved"], t.user_attrs["env_steps"]
        assert t.value == (steps if solved else 2 * 1500)
        assert (tmp_path / "trials" / f"trial-{t.number:04d}" / "runs").is_dir()


def test_meta_adaptation_objective(tmp_path):
    from neuralalchemy.meta.core import defaults_for

    raw = defaults_for("CartPoleTask-v1")
    raw["reservoir"] = {"size": 32}
    raw["meta"] = {"train_tasks": 2, "task_steps": 200, "norm_episodes": 1, "svi_steps": 10,
                   "heldout_tasks": 2, "adapt_episodes": 1, "eval_episodes": 2}
    base = Config.from_dict(raw).to_dict()
    spec = parse_spec({"objective": "meta-adapt", "pruner": "none", "space": {
        "training.prior_precision": {"type": "float", "low": 0.1, "high": 10, "log": True}}},
        base)
    study, _ = run_study(Plan("meta", None, tmp_path, spec, base), 1)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE" and trial.value > 0
    assert sorted(trial.intermediate_values) == [0, 1]   # one per held-out task


@pytest.mark.slow
def test_tune_cartpole_end_to_end(tmp_path):
    tiny = [f"--set={s}.{k}={v}" for s, kv in TINY.items() for k, v in kv.items()]
    proc = alchemy("tune", "--config", str(ROOT / "configs" / "tune_cartpole.yaml"), *tiny,
                   "--trials", "2", "--workers", "2", "--export", "best.yaml", "--no-progress",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "experiments" / "tune" / "tune_cartpole"
    assert (folder / "history.png").stat().st_size > 1000
    assert "study tune_cartpole: 2 trials" in proc.stdout
    best = yaml.safe_load((folder / "study.json").read_text())["best"]
    cfg = load_config(tmp_path / "best.yaml")
    assert cfg.reservoir.spectral_radius == best["params"]["reservoir.spectral_radius"]
    assert cfg.training.step_size == best["params"]["training.step_size"]
    assert cfg.reservoir.size == 32 and cfg.training.steps == 1500
