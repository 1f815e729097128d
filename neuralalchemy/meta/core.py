"""What meta-training, adaptation and continual learning share: the agent's fixed parts (reservoir,
encoder, feature normalisation), contexts for single tasks, the meta-prior and its storage.

Every task of a family runs on the *same* reservoir and encoder (one network on one chip), and
every readout prior is stated on one fixed feature normalisation, so readouts of different tasks
live in one space and a prior learned on some tasks applies to the next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.agent_io import EncoderParams, encoder_for
from neuralalchemy.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from neuralalchemy.config import Config, ConfigError
from neuralalchemy.envs import EnvError, env_info, format_env_spec, parse_env_spec
from neuralalchemy.learners.base import Context, Readout
from neuralalchemy.learners.blq import Blq, GaussianPrior
from neuralalchemy.meta.reservoir_prior import ReservoirPrior
from neuralalchemy.network import NetworkParams, build_network
from neuralalchemy.rollout import FeatureStats
from neuralalchemy.vecfeatures import mean_std

META_DEFAULTS: dict[str, Any] = {
    "env": "CartPoleTask-v1",
    "training": {"num_envs": 8, "gamma": 0.99, "refit_every": 250, "fitted_q_iterations": 10,
                 "replay_size": 20000},
}
"""Built-in defaults of the meta commands when no config file is given: batched Bayesian linear
Q on the CartPole family of Packer et al. (with :data:`FAMILY_DEFAULTS`, the same as
``configs/meta_cartpole.yaml``), for ``alchemy meta-train``, ``adapt`` and ``continual`` without
a config file."""

_CARTPOLE = {"encoder": {"ranges": [[-2.4, 2.4], [-3.0, 3.0], [-0.21, 0.21], [-3.5, 3.5]]},
             "exploration": {"shaping": "cartpole"}}
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "CartPoleTask-v1": _CARTPOLE, "CartPoleFlip-v1": _CARTPOLE}
"""Per family: CartPole's failure bounds as encoder ranges and potential-based shaping toward the
upright centre; other families calibrate their ranges and learn from the plain reward."""


def defaults_for(env_id: str | None) -> dict[str, Any]:
    """:data:`META_DEFAULTS` merged with the defaults of ``env_id``'s family."""
    env = env_id or META_DEFAULTS["env"]
    out: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v
                           for k, v in META_DEFAULTS.items()}
    for section, values in FAMILY_DEFAULTS.get(parse_env_spec(env)[0], {}).items():
        out[section] = {**out.get(section, {}), **values}
    return out


PRIOR_KEYS = ("mean", "std", "factor", "mu_std", "tau", "feat_mean", "feat_std", "task_mean",
              "elbo", "pooled")


@dataclass
class Agent:
    """The fixed parts every task shares."""

    cfg: Config
    network: NetworkParams
    encoder: EncoderParams
    ranges: np.ndarray
    family_id: str  # the family's Gymnasium id (no task)

    @property
    def trace_decay(self) -> float:
        """Feature trace decay (0: plain counts)."""
        r = self.cfg.readout
        return r.trace_decay if r.features == "trace" else 0.0

    def context(self, task: dict[str, float] | None, **training: Any) -> Context:
        """A learner context on one task (``training`` overrides ``cfg.training`` fields)."""
        spec = format_env_spec(self.family_id, task)
        cfg = replace(self.cfg, env=spec, training=replace(self.cfg.training, **training))
        return Context(cfg, env_info(spec), self.network, self.encoder, self.trace_decay)

    def checkpoint(self, task: dict[str, float] | None, ro: Readout, learner: dict[str, Any],
                   extras: dict[str, np.ndarray] | None = None) -> Checkpoint:
        """A deployable checkpoint of readout ``ro`` on ``task`` (compiles like any other)."""
        ctx = self.context(task)
        info = ctx.info
        env = {"env_id": info.env_id, "obs_dim": info.obs_dim, "n_actions": info.n_actions,
               "discrete": info.discrete, "action_low": info.action_low.tolist(),
               "action_high": info.action_high.tolist(),
               "reward_threshold": info.reward_threshold,
               "max_episode_steps": info.max_episode_steps}
        return Checkpoint(ctx.cfg, env, self.ranges, self.network, ro.theta, ro.mean, ro.std,
                          learner, bias=ro.bias, extras=extras or {})


def family_of(env_id: str) -> Any:
    """The task family of ``env_id`` (a family id, with or without a task), or a clear error."""
    from neuralalchemy.task_families import family_for_env

    base, _ = parse_env_spec(env_id)
    try:
        return family_for_env(base)
    except ValueError as exc:
        raise ConfigError(f"env {env_id!r} is not a task family: {exc}") from None


def build_agent(cfg: Config) -> Agent:
    """Reservoir and encoder for ``cfg`` (whose ``env`` names a task family)."""
    from neuralalchemy.train import encoder_ranges

    family = family_of(cfg.env)
    base_id, _ = parse_env_spec(cfg.env)
    info = env_info(base_id)
    if not info.discrete:
        raise ConfigError(f"env {base_id}: meta-learning uses Bayesian linear Q readouts, which "
                          "need discrete actions; pick a discrete family (e.g. CartPoleTask-v1)")
    ranges = encoder_ranges(replace(cfg, env=base_id), info)
    enc = encoder_for(cfg.encoder, ranges)
    network = build_network(cfg.reservoir, enc.n_channels, enc.binary)
    return Agent(replace(cfg, env=family.env_id), network, enc, ranges, family.env_id)


def agent_from_checkpoint(ckpt: Checkpoint) -> Agent:
    """The fixed parts of a meta-trained (or adapted) agent."""
    cfg = ckpt.config
    base_id, _ = parse_env_spec(cfg.env)
    family_of(base_id)
    enc = encoder_for(cfg.encoder, ckpt.encoder_ranges)
    return Agent(replace(cfg, env=base_id), ckpt.network, enc, ckpt.encoder_ranges, base_id)


def shared_normalisation(agent: Agent, tasks: list[dict[str, float]], episodes: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and std over ``episodes`` episodes per task with random linear readouts."""
    stats = FeatureStats.empty(agent.network.size)
    rng = np.random.default_rng([seed, 0x0A0])
    for i, task in enumerate(tasks):
        ctx = agent.context(task)
        n = agent.network.size
        w = rng.standard_normal((episodes, ctx.info.n_actions, n)) / np.sqrt(n)
        b = np.zeros((episodes, ctx.info.n_actions))
        ctx.episodes(w, b, np.zeros(n), np.ones(n), seed + 7919 * i, stats)
    return mean_std(stats)


def predictive_gaussian(mean: np.ndarray, std: np.ndarray, factor: np.ndarray,
                        feat_mean: np.ndarray, feat_std: np.ndarray,
                        scale: float = 1.0) -> GaussianPrior:
    """``N(mean, scale²·(factor·factorᵀ + diag std²))`` (a hierarchy's predictive for a new
    task's readout) as the Bayesian linear Q learner takes it."""
    if factor.shape[-1] == 0:
        return GaussianPrior(mean, 1.0 / (scale * std) ** 2, feat_mean, feat_std)
    cov = factor @ factor.T + np.diag(std.ravel() ** 2)
    precision = np.linalg.inv(scale ** 2 * cov)
    return GaussianPrior(mean, (precision + precision.T) / 2, feat_mean, feat_std)


@dataclass
class Mixture:
    """A prior with one readout mean per *task kind* (a value of the family's discrete task
    parameters, e.g. CartPoleFlip's ``direction``), all sharing the covariance of the
    :class:`MetaPrior` that holds it; and what the kinds' policies earn on each other's tasks,
    from which a new task's kind is inferred.

    ``returns[j, k]`` = (mean, std) of the episode return of component ``j``'s mean readout on the
    training tasks of kind ``k``: the likelihood of an adaptation episode's return, given the
    task's kind, when the agent acted on component ``j``."""

    means: np.ndarray      # (K, A, D)
    weights: np.ndarray    # (K,) prior probability of each kind
    returns: np.ndarray    # (K, K, 2)
    kinds: list[dict[str, float]]  # the discrete task values of each component

    def to_extras(self) -> dict[str, np.ndarray]:
        """Arrays stored with the checkpoint (``extra.prior.mixture.*``)."""
        return {"prior.mixture.means": self.means, "prior.mixture.weights": self.weights,
                "prior.mixture.returns": self.returns,
                "prior.mixture.kinds": np.array(json.dumps(self.kinds))}

    @classmethod
    def from_extras(cls, ex: dict[str, np.ndarray]) -> Mixture | None:
        """The mixture stored by :meth:`to_extras`, or None."""
        if "prior.mixture.means" not in ex:
            return None
        return cls(np.asarray(ex["prior.mixture.means"]), np.asarray(ex["prior.mixture.weights"]),
                   np.asarray(ex["prior.mixture.returns"]),
                   json.loads(str(ex["prior.mixture.kinds"])))


@dataclass
class MetaPrior:
    """A new task's readout prior ``N(mean, factor·factorᵀ + diag std²)`` over all actions'
    readouts (``mean``, ``std`` (A, D = features + 1); ``factor`` (A·D, k) on ``w.ravel()``) on
    the normalisation ``feat_mean``/``feat_std``, with what the fit learned about the family."""

    mean: np.ndarray
    std: np.ndarray
    factor: np.ndarray       # (A·D, k)
    mu_std: np.ndarray
    tau: np.ndarray
    feat_mean: np.ndarray
    feat_std: np.ndarray
    task_mean: np.ndarray
    elbo: np.ndarray
    pooled: np.ndarray       # (A, D) one ridge readout for all training tasks (a baseline)
    noise_var: float
    info: dict[str, Any]
    reservoir: ReservoirPrior | None = None  # the hyperparameter prior (None: not fitted)
    mixture: Mixture | None = None  # one prior mean per task kind (None: one Gaussian)

    def covariance(self) -> np.ndarray:
        """(A·D, A·D) prior covariance of ``w.ravel()``."""
        return self.factor @ self.factor.T + np.diag(self.std.ravel() ** 2)

    def gaussian(self, scale: float = 1.0) -> GaussianPrior:
        """The prior as the Bayesian linear Q learner takes it (covariance × ``scale²``)."""
        return predictive_gaussian(self.mean, self.std, self.factor, self.feat_mean,
                                   self.feat_std, scale)

    def to_extras(self) -> dict[str, np.ndarray]:
        """Arrays stored with the agent's checkpoint (``extra.prior.*``)."""
        out = {f"prior.{k}": np.asarray(getattr(self, k)) for k in PRIOR_KEYS}
        out["prior.info"] = np.array(json.dumps({**self.info, "noise_var": self.noise_var}))
        if self.reservoir is not None:
            out.update(self.reservoir.to_extras())
        if self.mixture is not None:
            out.update(self.mixture.to_extras())
        return out

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, where: str = "") -> MetaPrior:
        """The prior stored with ``ckpt``, or a one-line error naming what to run."""
        ex = ckpt.extras
        if not all(f"prior.{k}" in ex for k in (*PRIOR_KEYS, "info")):
            raise ConfigError(f"{where or 'checkpoint'} holds no meta-prior; make one with "
                              "`alchemy meta-train`")
        info = json.loads(str(ex["prior.info"]))
        noise_var = float(info.pop("noise_var"))
        return cls(**{k: np.asarray(ex[f"prior.{k}"]) for k in PRIOR_KEYS},
                   noise_var=noise_var, info=info, reservoir=ReservoirPrior.from_extras(ex),
                   mixture=Mixture.from_extras(ex))


def find_prior_checkpoint(source: str | None, root: str) -> tuple[Path, Checkpoint]:
    """``source`` (a run folder or checkpoint file), else the newest meta-trained run under
    ``root/runs``; the checkpoint must hold a meta-prior."""
    if source:
        path = Path(source)
        ckpt = load_checkpoint(path)
        MetaPrior.from_checkpoint(ckpt, str(path))
        return path, ckpt
    runs = Path(root) / "runs"
    found = sorted(runs.glob(f"*/{CHECKPOINT_NAME}"), key=lambda p: p.parent.name, reverse=True)
    for path in found:
        ckpt = load_checkpoint(path)
        if "prior.mean" in ckpt.extras and ckpt.learner.get("algorithm") == "meta-prior":
            return path.parent, ckpt
    raise ConfigError(f"no meta-trained agent under {runs}; run `alchemy meta-train` first "
                      "(or pass the run folder)")


def parse_task(text: str | None, agent: Agent) -> dict[str, float] | None:
    """``key=value,...`` (or a full env spec) → task dict validated against the family."""
    if text is None:
        return None
    spec = text if "@" in text else f"{agent.family_id}@{text}"
    base, task = parse_env_spec(spec)
    if base != agent.family_id:
        raise EnvError(f"task {text!r} names {base}, but the agent was meta-trained on "
                       f"{agent.family_id}")
    env_info(spec)  # validates the keys and values with the family's one-line error
    return task


def save_agent(path: Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` as ``path/checkpoint.npz`` (atomically)."""
    save_checkpoint(path / CHECKPOINT_NAME, ckpt)
    return path


def new_blq(ctx: Context, prior: GaussianPrior, noise_var: float | None) -> Blq:
    """A Bayesian linear Q learner on ``ctx`` starting from ``prior``."""
    if noise_var is not None:
        cfg = replace(ctx.cfg, training=replace(ctx.cfg.training, noise_var=noise_var))
        ctx = Context(cfg, ctx.info, ctx.network, ctx.encoder, ctx.trace_decay)
    return Blq(ctx, prior)
