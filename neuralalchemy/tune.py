"""Hyperparameter search with Optuna: a search space declared next to the run configuration, a
registry of objectives, and a study store shared by worker processes and machines.

The ``tune:`` section of a YAML config file (the rest of the file is the base run configuration)::

    tune:
      objective: return        # a name in OBJECTIVES, or package.module:attribute (an Objective)
      direction: maximize      # default: the objective's own
      sampler: tpe             # tpe (Bayesian optimization), gp, grid or random
      trials: 20               # trials of one `alchemy tune` command, spread over its workers
      seed: 0                  # sampler seed (worker i: seed + i; the grid keeps one order)
      pruner: median           # none, median or hyperband; or {type: median, startup_trials: 4,
                               # warmup_steps: 2}
      space:                   # dotted configuration key -> distribution
        training.step_size: {type: float, low: 0.01, high: 0.3, log: true}
        reservoir.size: {type: int, low: 64, high: 256, step: 64}
        readout.features: {type: categorical, choices: [counts, trace]}

Every error in the section is a :class:`~neuralalchemy.config.ConfigError` (a ``ValueError``)
whose message starts with the key, e.g. ``tune.space.reservoir.size.low: ...``.

Objectives take the trial's configuration and a :class:`TrialRun` (its folder, its parameters,
``report(value, step)`` for pruning) and return one number; :func:`register_objective` adds one.
"""

from __future__ import annotations

import dataclasses
import decimal
import importlib
import itertools
import math
import multiprocessing
import os
import socket
import sys
import time
import typing
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuralalchemy.config import Config, ConfigError

if TYPE_CHECKING:
    import optuna

Scalar = str | int | float | bool | None
_KINDS = ("float", "int", "categorical")
_BIG = 2**63
GRID_LIMIT = 100_000
"""Most points a grid may hold."""

DEFAULT_SPACE: dict[str, Any] = {
    "training.step_size": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    "reservoir.spectral_radius": {"type": "float", "low": 0.5, "high": 1.5},
    "reservoir.input_scale": {"type": "float", "low": 0.3, "high": 2.0},
}
"""The search space when the file declares none: ARS step size, spectral radius, input scale."""


# ---------------------------------------------------------------- search space
@dataclass(frozen=True)
class Param:
    """One searched configuration key: a float or int range, or categorical choices."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Scalar, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw this parameter in ``trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Scalar]:
        """Every value of a discrete parameter (categorical, int, or float with a step)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None and self.kind == "float":
            raise ConfigError(f"tune.space.{self.key}: the grid sampler needs discrete values; "
                              "give a step, or use type int or categorical")
        step = self.step or 1
        n = round((self.high - self.low) / step) + 1
        if self.kind == "int":
            return [int(self.low) + i * int(step) for i in range(n)]
        return [min(self.high, float(f"{self.low + i * step:.12g}")) for i in range(n)]

    def unit(self, value: Any) -> float:
        """Where ``value`` lies in the space, in [0, 1] (log scale for log ranges)."""
        if self.kind == "categorical":
            return self.choices.index(value) / max(1, len(self.choices) - 1)
        lo, hi, v = self.low, self.high, float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return 0.0 if hi == lo else (v - lo) / (hi - lo)


def _number(where: str, value: Any, integer: bool = False) -> float:
    """A finite number (YAML reads ``1e-3`` as a string: that is accepted too)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value if isinstance(value, float) else 0.0):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if abs(value) >= _BIG:
        raise ConfigError(f"{where}: {value!r} is too large")
    if integer and not float(value).is_integer():
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return int(value) if integer else float(value)


def _keys(where: str, raw: Mapping[Any, Any], allowed: tuple[str, ...]) -> None:
    for k in raw:
        if k not in allowed:
            raise ConfigError(f"{where}.{k}: unknown key; known keys here: {', '.join(allowed)}")


def _remainder(low: float, high: float, step: float) -> bool:
    """Whether ``high - low`` is not a multiple of ``step`` (decimal arithmetic, as Optuna)."""
    d = [decimal.Decimal(str(v)) for v in (low, high, step)]
    return (d[1] - d[0]) % d[2] != 0


def _range_param(key: str, kind: str, raw: Mapping[Any, Any]) -> Param:
    where = f"tune.space.{key}"
    _keys(where, raw, ("type", "low", "high", "log", "step"))
    for name in ("low", "high"):
        if name not in raw:
            raise ConfigError(f"{where}.{name}: required for type {kind}")
    integer = kind == "int"
    low = _number(f"{where}.low", raw["low"], integer)
    high = _number(f"{where}.high", raw["high"], integer)
    if low > high:
        raise ConfigError(f"{where}.low: {low} exceeds high ({high})")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: a log range needs low > 0, got {low}")
    step = None
    if raw.get("step") is not None:
        step = _number(f"{where}.step", raw["step"], integer)
        if step <= 0:
            raise ConfigError(f"{where}.step: must be > 0, got {step}")
        if log:
            raise ConfigError(f"{where}.step: a log range takes no step")
        n = (high - low) / step
        if not math.isfinite(n) or n > GRID_LIMIT or _remainder(low, high, step):
            raise ConfigError(f"{where}.step: high - low must be a multiple of step "
                              f"(at most {GRID_LIMIT} steps)")
    return Param(key, kind, low, high, log, step)


def _choices(key: str, raw: Mapping[Any, Any]) -> Param:
    where = f"tune.space.{key}"
    _keys(where, raw, ("type", "choices"))
    values = raw.get("choices")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.choices: expected a non-empty list, got {values!r}")
    for i, v in enumerate(values):
        ok = v is None or isinstance(v, (str, bool)) or (
            isinstance(v, (int, float)) and abs(v) < _BIG and math.isfinite(v))
        if not ok:
            raise ConfigError(f"{where}.choices: entry {i} ({v!r}) is not a finite number, "
                              "string, boolean or null")
        if any(v == w for w in values[:i]):
            raise ConfigError(f"{where}.choices: entry {i} ({v!r}) repeats an earlier one")
    return Param(key, "categorical", choices=tuple(values))


def parse_param(key: Any, raw: Any) -> Param:
    """One ``space`` entry (its key is checked against the schema by :func:`check_space`)."""
    where = f"tune.space.{key}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 0.1, "
                          f"high: 1.0}}, got {raw!r}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ConfigError(f"{where}.type: {kind!r} is not one of {', '.join(_KINDS)}")
    return _choices(key, raw) if kind == "categorical" else _range_param(key, kind, raw)


def schema_types() -> dict[str, Any]:
    """Dotted configuration key -> its annotated type."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update({f"{f.name}.{k}": v for k, v in typing.get_type_hints(tp).items()})
        else:
            out[f.name] = tp
    return out


def check_space(space: tuple[Param, ...], base: Mapping[str, Any]) -> None:
    """Every key names a configuration key, and every end of its range is a valid value there."""
    types = schema_types()
    for p in space:
        where = f"tune.space.{p.key}"
        if p.key not in types:
            raise ConfigError(f"{where}: not a configuration key (see docs/configuration.md)")
        if p.kind == "float" and types[p.key] is int:
            raise ConfigError(f"{where}: {p.key} is an integer key; use type: int")
        candidates = list(p.choices) if p.kind == "categorical" else [p.low, p.high]
        for value in candidates:
            try:
                apply_params(base, {p.key: value})
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None


def apply_params(base: Mapping[str, Any], params: Mapping[str, Any]) -> Config:
    """The base configuration (a nested mapping) with dotted keys set, validated."""
    data: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in params.items():
        section, _, name = key.rpartition(".")
        node = data.setdefault(section, {}) if section else data
        node[name] = value
    return Config.from_dict(data)


# ---------------------------------------------------------------- objectives
@dataclass
class TrialRun:
    """What an objective sees besides the configuration: its folder, parameters, pruning."""

    folder: Path
    params: dict[str, Any]
    space: tuple[Param, ...]
    trial: optuna.Trial | None = None
    number: int = 0

    def report(self, value: float, step: int) -> None:
        """Report an intermediate value; raises ``optuna.TrialPruned`` when the pruner says so."""
        if self.trial is None:
            return
        import optuna

        self.trial.report(float(value), step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (value {value:.4g})")

    def note(self, key: str, value: Any) -> None:
        """Keep a JSON value with the trial (shown by ``alchemy tune``'s table)."""
        if self.trial is not None:
            self.trial.set_user_attr(key, value)


ObjectiveFn = Callable[[Config, TrialRun], float]


@dataclass(frozen=True)
class Objective:
    """A named training objective and the direction in which it improves."""

    name: str
    direction: str
    fn: ObjectiveFn
    help: str


OBJECTIVES: dict[str, Objective] = {}


def register_objective(name: str, direction: str, help: str) -> Callable[[ObjectiveFn],
                                                                          ObjectiveFn]:
    """Decorator: add ``fn(cfg, run) -> float`` to :data:`OBJECTIVES` under ``name``."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"objective {name!r}: direction must be maximize or minimize")

    def add(fn: ObjectiveFn) -> ObjectiveFn:
        OBJECTIVES[name] = Objective(name, direction, fn, help)
        return fn
    return add


def objective_of(name: str) -> Objective:
    """A registered objective, or ``package.module:attribute`` naming an :class:`Objective`."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    known = ", ".join(sorted(OBJECTIVES))
    module, colon, attr = name.partition(":")
    if not colon:
        raise ConfigError(f"tune.objective: unknown objective {name!r}; known: {known} "
                          "(or package.module:attribute)")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise ConfigError(f"tune.objective: cannot import {name!r} ({exc})") from None
    if not isinstance(found, Objective):
        raise ConfigError(f"tune.objective: {name!r} is not a neuralalchemy.tune.Objective")
    return found


def _train(cfg: Config, run: TrialRun, score: Callable[[float], float]) -> dict[str, Any]:
    from neuralalchemy.train import train

    evals = itertools.count()
    result = train(cfg, out=run.folder, progress=False,
                   on_eval=lambda r: run.report(score(r["mean"]), next(evals)))
    s = result.summary
    run.note("run_dir", str(result.run_dir))
    run.note("solved", s["solved"])
    run.note("eval_mean", s["eval_mean"])
    run.note("env_steps", s["env_steps"])
    return s


@register_objective("return", "maximize",
                    "evaluation mean return of the kept readout (the run's summary eval_mean); "
                    "intermediate values: each periodic evaluation")
def _return(cfg: Config, run: TrialRun) -> float:
    return float(_train(cfg, run, lambda m: m)["eval_mean"])


@register_objective("steps", "minimize",
                    "environment steps until the evaluation mean reached the target; unsolved "
                    "runs score twice training.steps; intermediate values: minus each evaluation")
def _steps(cfg: Config, run: TrialRun) -> float:
    s = _train(cfg, run, lambda m: -m)
    return float(s["env_steps"] if s["solved"] else 2 * cfg.training.steps)


@register_objective("meta-adapt", "maximize",
                    "meta-train on the family's training tasks, then the greedy return after "
                    "meta.adapt_episodes episodes on meta.heldout_tasks held-out tasks (mean)")
def _meta_adapt(cfg: Config, run: TrialRun) -> float:
    from neuralalchemy.meta.adapt import adapt_blq
    from neuralalchemy.meta.core import agent_from_checkpoint, family_of, find_prior_checkpoint
    from neuralalchemy.meta.metatrain import meta_train

    result = meta_train(cfg, out=run.folder, progress=False)
    run.note("run_dir", str(result.run_dir))
    _, ckpt = find_prior_checkpoint(str(result.run_dir), str(run.folder))
    agent = agent_from_checkpoint(ckpt)
    m, seed = cfg.meta, cfg.training.seed
    tasks = family_of(agent.family_id).tasks("within", m.heldout_tasks, 10_000 + seed)
    returns: list[float] = []
    for i, task in enumerate(tasks):
        adapted = adapt_blq(agent, task, result.prior.gaussian(), result.prior.noise_var,
                            (m.adapt_episodes,), m.eval_episodes, seed + i, m.adapt_select)
        adapted.learner.vec.close()
        returns.append(adapted.returns[-1])
        run.report(sum(returns) / len(returns), i)
    return sum(returns) / len(returns)


@register_objective("synthetic", "minimize",
                    "no training: squared distance of the parameters from 30 % of each range, "
                    "with five intermediate values; checks a store and its workers in seconds")
def _synthetic(cfg: Config, run: TrialRun) -> float:
    value = sum((p.unit(run.params[p.key]) - 0.3) ** 2 for p in run.space)
    for step in range(5):
        run.report(value + 0.1 * (4 - step), step)
    return value


# ---------------------------------------------------------------- the spec
def _sampler_tpe(spec: TuneSpec, seed: int | None) -> Any:
    import optuna
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def _sampler_gp(spec: TuneSpec, seed: int | None) -> Any:
    import optuna
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def _sampler_grid(spec: TuneSpec, seed: int | None) -> Any:
    import optuna
    return optuna.samplers.GridSampler({p.key: p.grid() for p in spec.space}, seed=spec.seed)


def _sampler_random(spec: TuneSpec, seed: int | None) -> Any:
    import optuna
    return optuna.samplers.RandomSampler(seed=seed)


SAMPLERS: dict[str, Callable[[TuneSpec, int | None], Any]] = {
    "tpe": _sampler_tpe, "gp": _sampler_gp, "grid": _sampler_grid, "random": _sampler_random}
"""Sampler name -> factory(spec, seed)."""


def _pruner(kind: str, startup: int, warmup: int) -> Any:
    import optuna

    table: dict[str, Callable[[], Any]] = {
        "none": optuna.pruners.NopPruner,
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=startup,
                                                      n_warmup_steps=warmup),
        "hyperband": optuna.pruners.HyperbandPruner,
    }
    return table[kind]()


PRUNERS = ("none", "median", "hyperband")


@dataclass(frozen=True)
class PrunerSpec:
    """``median``: prune a trial whose value at a step is worse than the median of earlier
    trials at that step, after ``startup_trials`` finished trials and ``warmup_steps`` steps."""

    kind: str = "median"
    startup_trials: int = 3
    warmup_steps: int = 1

    def build(self) -> Any:
        """The Optuna pruner."""
        return _pruner(self.kind, self.startup_trials, self.warmup_steps)


@dataclass(frozen=True)
class TuneSpec:
    """The ``tune`` section: objective, direction, sampler, budget, pruner, search space."""

    objective: str = "return"
    direction: str | None = None
    sampler: str = "tpe"
    trials: int = 20
    seed: int | None = None
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    space: tuple[Param, ...] = ()

    @property
    def resolved_direction(self) -> str:
        """The given direction, else the objective's."""
        return self.direction or objective_of(self.objective).direction

    def sampler_for(self, worker: int) -> Any:
        """The Optuna sampler of worker ``worker`` (seeded ``seed + worker``)."""
        seed = None if self.seed is None else self.seed + worker
        return SAMPLERS[self.sampler](self, seed)


_SPEC_KEYS = ("objective", "direction", "sampler", "trials", "seed", "pruner", "space")


def _choice(where: str, value: Any, options: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(options)}")
    return value


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    v = int(_number(where, value, integer=True))
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: {v} is out of range [{lo}, {hi}]")
    return v


def _parse_pruner(raw: Any) -> PrunerSpec:
    if isinstance(raw, str) or raw is None:
        return PrunerSpec(_choice("tune.pruner", raw, PRUNERS))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tune.pruner: expected a name or a mapping, got {raw!r}")
    kind = _choice("tune.pruner.type", raw.get("type"), PRUNERS)
    allowed = ("type", "startup_trials", "warmup_steps") if kind == "median" else ("type",)
    _keys("tune.pruner", raw, allowed)
    d = PrunerSpec()
    return PrunerSpec(kind,
                      _int("tune.pruner.startup_trials", raw.get("startup_trials",
                                                                 d.startup_trials), 0, 10**6),
                      _int("tune.pruner.warmup_steps", raw.get("warmup_steps", d.warmup_steps),
                           0, 10**9))


def parse_spec(raw: Any, base: Mapping[str, Any] | None = None) -> TuneSpec:
    """Validate a ``tune`` section (``None``: the defaults with :data:`DEFAULT_SPACE`); with
    ``base`` (a configuration as a nested mapping), also check the space against the schema."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tune: expected a mapping of keys, got {raw!r}")
    _keys("tune", raw, _SPEC_KEYS)
    d = TuneSpec()
    objective = raw.get("objective", d.objective)
    if not isinstance(objective, str) or not objective:
        raise ConfigError(f"tune.objective: expected a name, got {objective!r}")
    objective_of(objective)
    direction = raw.get("direction")
    if direction is not None:
        _choice("tune.direction", direction, ("maximize", "minimize"))
    seed = raw.get("seed")
    space_raw = raw.get("space", DEFAULT_SPACE)
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise ConfigError("tune.space: expected a non-empty mapping of configuration keys to "
                          f"distributions, got {space_raw!r}")
    spec = TuneSpec(objective, direction,
                    _choice("tune.sampler", raw.get("sampler", d.sampler), list(SAMPLERS)),
                    _int("tune.trials", raw.get("trials", d.trials), 1, 10**6),
                    None if seed is None else _int("tune.seed", seed, 0, 2**31 - 1),
                    _parse_pruner(raw.get("pruner", d.pruner.kind)),
                    tuple(parse_param(k, v) for k, v in space_raw.items()))
    if spec.sampler == "grid":
        size = math.prod(len(p.grid()) for p in spec.space)
        if size > GRID_LIMIT:
            raise ConfigError(f"tune.space: the grid has {size} points (at most {GRID_LIMIT})")
    if base is not None:
        check_space(spec.space, base)
    return spec


# ---------------------------------------------------------------- storage and studies
@dataclass(frozen=True)
class Plan:
    """One ``alchemy tune`` command: study name, store, folder, spec and base configuration."""

    study: str
    storage: str | None      # RDB URL, journal file path, or None: folder/journal.log
    folder: Path
    spec: TuneSpec
    base: dict[str, Any]
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def journal(self) -> Path:
        """The default store: a journal file in the study folder."""
        return self.folder / "journal.log"


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(url: str | None, folder: Path) -> Any:
    """``None``: a journal file in ``folder`` (safe for processes of one machine); a path: that
    journal file; ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: an RDB store."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url is None or "://" not in url:
        path = Path(url) if url else folder / "journal.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(f"--storage {path}: cannot open the journal file ({exc})") from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    # a database server: trials of a worker that died (no heartbeat) become FAIL
    heartbeat: dict[str, Any] = {"heartbeat_interval": 60, "grace_period": 240}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}
        heartbeat = {}
    elif url.startswith(("postgresql", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **heartbeat)
    except ImportError as exc:
        raise ConfigError(f"--storage {_hide_password(url)}: the database driver is not "
                          f"installed ({exc.__cause__ or exc}); install the one for this URL "
                          "(e.g. psycopg2-binary for postgresql://)") from None
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        raise ConfigError(f"--storage {_hide_password(url)}: cannot open the store "
                          f"({reason[0]})") from None


def open_study(plan: Plan, worker: int = 0, storage: Any = None) -> optuna.Study:
    """Create the study or join it (same name in the same store)."""
    import optuna

    storage = storage if storage is not None else open_storage(plan.storage, plan.folder)
    direction = plan.spec.resolved_direction
    try:
        with quiet_optuna():
            study = optuna.create_study(
                storage=storage, study_name=plan.study,
                direction=optuna.study.StudyDirection[direction.upper()],
                sampler=plan.spec.sampler_for(worker), pruner=plan.spec.pruner.build(),
                load_if_exists=True)
    except optuna.exceptions.OptunaError as exc:
        raise ConfigError(f"study {plan.study!r}: {exc}") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {plan.study!r} in this store is to {study.direction.name.lower()}"
                          f" its objective; the spec says {direction}: pick another --study")
    return study


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial log lines off (the command shows its own progress and table)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _run_trial(plan: Plan, objective: Objective, trial: optuna.Trial) -> float:
    trial.set_user_attr("batch", plan.batch)
    trial.set_user_attr("worker", f"{socket.gethostname()}/{os.getpid()}")
    params = {p.key: p.suggest(trial) for p in plan.spec.space}
    folder = plan.folder / "trials" / f"trial-{trial.number:04d}"
    run = TrialRun(folder, params, plan.spec.space, trial, trial.number)
    import optuna

    try:
        return float(objective.fn(apply_params(plan.base, params), run))
    except optuna.TrialPruned:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        trial.set_user_attr("error", f"{type(exc).__name__}: {first}"[:300])
        raise


Callback = Callable[[Any, Any], None]


def optimize(plan: Plan, trials: int, worker: int = 0, timeout: float | None = None,
             callbacks: tuple[Callback, ...] = ()) -> optuna.Study:
    """Run ``trials`` trials in this process; a trial that raises is recorded FAILED."""
    study = open_study(plan, worker)
    objective = objective_of(plan.spec.objective)
    with quiet_optuna():
        study.optimize(lambda t: _run_trial(plan, objective, t), n_trials=trials,
                       timeout=timeout, catch=(Exception,), callbacks=list(callbacks))
    return study


def _worker(plan: Plan, trials: int, worker: int, timeout: float | None) -> None:
    try:
        optimize(plan, trials, worker, timeout)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: worker {worker}: {first}", file=sys.stderr, flush=True)
        sys.exit(1)


def shares(trials: int, workers: int) -> list[int]:
    """``trials`` split as evenly as possible over at most ``workers`` workers."""
    return [n for i in range(workers) if (n := trials // workers + (i < trials % workers))]


def run_study(plan: Plan, trials: int, workers: int = 1, timeout: float | None = None,
              on_update: Callable[[list[Any]], None] | None = None,
              poll_s: float = 0.5) -> tuple[optuna.Study, list[int]]:
    """``trials`` trials over ``workers`` processes (1: this process) against one store.

    Returns the study and the exit codes of the worker processes (empty for one worker).
    ``on_update`` receives the study's trials whenever one finishes (polled for processes).
    """
    study = open_study(plan)
    if workers <= 1:
        cbs: tuple[Callback, ...] = ()
        if on_update is not None:
            cbs = (lambda s, _t: on_update(s.get_trials(deepcopy=False)),)
        return optimize(plan, trials, 0, timeout, cbs), []
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(plan, n, i, timeout), name=f"tune-worker-{i}")
             for i, n in enumerate(shares(trials, workers))]
    _start_keeping_default_method(procs)
    try:
        while any(p.is_alive() for p in procs):
            if on_update is not None:
                on_update(study.get_trials(deepcopy=False))
            time.sleep(poll_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if on_update is not None:
        on_update(study.get_trials(deepcopy=False))
    return study, [int(p.exitcode or 0) for p in procs]


def _start_keeping_default_method(procs: list[typing.Any]) -> None:
    """Start spawn-context processes without fixing this process's default start method.

    Preparing a spawned child asks for the default start method, which records it; Lava, when
    imported later in the same process, must set ``fork`` itself and fails once a method is
    recorded ("context has already been set"). So the unset state is put back after starting.
    """
    default: typing.Any = multiprocessing.context._default_context  # type: ignore[attr-defined]
    before = default._actual_context
    try:
        for p in procs:
            p.start()
    finally:
        default._actual_context = before


def best_config(plan: Plan, study: optuna.Study) -> Config:
    """The base configuration with the best completed trial's parameters."""
    return apply_params(plan.base, study.best_trial.params)

