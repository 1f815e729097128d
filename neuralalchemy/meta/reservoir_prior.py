"""The reservoir's part of the meta-prior: a learned prior over the hyperparameters that shape the
reservoir's dynamics, fitted with SVI across a family's training tasks.

Hyperparameters ``h`` (:data:`HYPER`): the recurrent weight scale (``spectral_radius``), the input
gain (``input_scale``), the current and voltage decays (``du``, ``dv``) and the excitability
(``bias``). Every weight and the bias are stated in units of the threshold ``vth``, so ``vth`` is
the unit of the dynamics and the threshold that matters is the distance ``vth − bias`` from rest;
``bias`` is its coordinate. Each lives in an unconstrained coordinate ``u``: log for the scales,
logit for the decays, the identity for the bias.

The reservoir's structure (which synapses exist, their signs and relative sizes) comes from
``reservoir.seed`` and stays fixed; a hyperparameter vector rescales it. Candidates
``u_1 … u_G`` cover a box around the configured values (the first *is* the configured reservoir;
the others a scrambled Sobol design), so the model is::

    m      ~ N(u_config, w²)                      (P,)  prior mean of a task's hyperparameters
    s      ~ LogNormal(log w/2, 1)                (P,)  their spread across tasks
    c_t    ~ Categorical(π(m, s)),  π_g ∝ N(u_g; m, diag s²)   per task t: its candidate
    D_t    | c_t = g   ~   exp E_t,g              the task's data under reservoir g

with ``w`` the box's half-width. ``E_t,g`` is the log evidence (type-II maximum likelihood:
MacKay's fixed point for the weight and noise precisions) of Bayesian linear regressions, per
action, from reservoir ``g``'s normalised features to what follows in the task's episodes: the
discounted return to go and the change of each observation dimension. Episodes come from a
uniformly random policy, so the data do not depend on any reservoir and every candidate is
scored on the same observations. The discrete ``c_t`` is summed out exactly (what Pyro's
enumeration would do, as one factor per task); ``m`` and ``s`` get an ``AutoNormal`` guide and
are fitted with SVI.

A new task's hyperparameters follow the predictive ``π(m̂, ŝ)``; the family's agent runs the
reservoir at its mode, and a new task's own posterior ``∝ π_g · exp E_new,g`` shows whether it
agrees (:func:`task_posterior`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from neuralalchemy.config import ReservoirConfig

HYPER: tuple[tuple[str, str, float], ...] = (
    ("spectral_radius", "log", math.log(2.0)),
    ("input_scale", "log", math.log(2.0)),
    ("du", "logit", 1.0),
    ("dv", "logit", 1.0),
    ("bias", "identity", 0.3),
)
"""(name, coordinate, half-width of the candidate box in that coordinate)."""
HYPER_NAMES = tuple(name for name, _, _ in HYPER)
"""The hyperparameters the prior covers, in order."""

_TO_U = {"log": math.log, "logit": lambda v: math.log(v / (1 - v)), "identity": float}
_FROM_U = {"log": math.exp, "logit": lambda x: 1 / (1 + math.exp(-x)), "identity": float}
_LIMITS = {"spectral_radius": (1e-3, 100.0), "input_scale": (1e-3, 100.0), "du": (0.01, 0.99),
           "dv": (0.01, 0.99), "bias": (-10.0, 10.0)}


def to_unconstrained(res: ReservoirConfig) -> np.ndarray:
    """The configured hyperparameters as ``u`` (P,)."""
    out = []
    for name, coord, _ in HYPER:
        lo, hi = _LIMITS[name]
        v = float(np.clip(getattr(res, name), lo, hi))
        out.append(_TO_U[coord](v))
    return np.array(out)


def from_unconstrained(u: np.ndarray) -> dict[str, float]:
    """``u`` (P,) back to hyperparameter values (clipped to the config's ranges)."""
    out = {}
    for (name, coord, _), x in zip(HYPER, np.asarray(u, dtype=np.float64)):
        v = _FROM_U[coord](float(x))
        lo, hi = _LIMITS[name]
        out[name] = float(np.clip(v, lo, hi))
    return out


def half_widths() -> np.ndarray:
    """The candidate box's half-width per coordinate (P,)."""
    return np.array([w for _, _, w in HYPER])


def candidates(res: ReservoirConfig, n: int, seed: int) -> np.ndarray:
    """``n`` candidates (n, P) in ``u``: the configured reservoir first, then a scrambled Sobol
    design over the box ``u_config ± w``."""
    from scipy.stats import qmc

    center = to_unconstrained(res)
    if n <= 1:
        return center[None, :]
    sobol = qmc.Sobol(len(HYPER), scramble=True, seed=seed)
    design = sobol.random_base2(max(0, math.ceil(math.log2(n - 1))))[: n - 1]
    return np.vstack([center, center + (2 * design - 1) * half_widths()])


def candidate_config(res: ReservoirConfig, u: np.ndarray) -> ReservoirConfig:
    """``res`` with the hyperparameters of candidate ``u`` (structure and seed unchanged)."""
    values: dict[str, Any] = from_unconstrained(u)
    return replace(res, **values)


# ---------------------------------------------------------------- evidence
def log_evidence(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> float:
    """Log marginal likelihood of ``y ≈ x w`` (n, D), ``w ~ N(0, α⁻¹I)``, noise ``N(0, β⁻¹)``,
    at the ``α, β`` that maximise it (MacKay's fixed-point updates), summed over ``y``'s columns
    when ``y`` is (n, J)."""
    y2 = y.reshape(len(y), -1)
    if len(y2) == 0:
        return 0.0
    lam, vec = np.linalg.eigh(x.T @ x)
    lam = np.clip(lam, 0.0, None)
    proj = vec.T @ (x.T @ y2)  # (D, J): Xᵀy in the eigenbasis of XᵀX
    total = 0.0
    for j in range(y2.shape[1]):
        yy = float(y2[:, j] @ y2[:, j])
        alpha, beta = 1.0, 1.0 / max(float(np.var(y2[:, j])), 1e-12)
        for _ in range(iterations):
            m = beta * proj[:, j] / (alpha + beta * lam)          # posterior mean
            gamma = float(np.sum(beta * lam / (alpha + beta * lam)))  # well-determined weights
            err = max(yy - 2 * float(m @ proj[:, j]) + float(m @ (lam * m)), 1e-12)
            alpha = max(gamma, 1e-6) / max(float(m @ m), 1e-12)
            beta = max(len(y2) - gamma, 1e-6) / err
        total += _evidence(lam, proj[:, j], yy, len(y2), alpha, beta)
    return total


def evidence_at(x: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """Log marginal likelihood of one target column ``y`` (n,) at fixed ``α, β``."""
    lam, vec = np.linalg.eigh(x.T @ x)
    return _evidence(np.clip(lam, 0.0, None), vec.T @ (x.T @ y), float(y @ y), len(y), alpha,
                     beta)


def _evidence(lam: np.ndarray, proj: np.ndarray, yy: float, n: int, alpha: float,
              beta: float) -> float:
    """``log N(y; 0, β⁻¹I + α⁻¹XXᵀ)`` from the eigenvalues ``lam`` of ``XᵀX``, ``proj`` = ``Xᵀy``
    in their basis and ``yy`` = ``yᵀy`` (Bishop 2006, eq. 3.86)."""
    m = beta * proj / (alpha + beta * lam)
    err = max(yy - 2 * float(m @ proj) + float(m @ (lam * m)), 0.0)
    return (0.5 * len(lam) * math.log(alpha) + 0.5 * n * math.log(beta)
            - 0.5 * n * math.log(2 * math.pi) - 0.5 * beta * err - 0.5 * alpha * float(m @ m)
            - 0.5 * float(np.sum(np.log(alpha + beta * lam))))


@dataclass
class Episodes:
    """Random-policy episodes of one task: observations ``obs[i]`` (L_i + 1, O), actions and
    rewards (L_i,)."""

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[np.ndarray]


def random_episodes(env_spec: str, n: int, seed: int, max_steps: int = 1000) -> Episodes:
    """``n`` episodes of a uniformly random policy on ``env_spec`` (seeds ``seed + i``)."""
    from neuralalchemy.envs import make_env

    env = make_env(env_spec)
    env.action_space.seed(seed)
    out = Episodes([], [], [])
    try:
        for i in range(n):
            o, _ = env.reset(seed=seed + i)
            obs, acts, rews = [np.asarray(o, dtype=np.float64)], [], []
            for _ in range(max_steps):
                a = env.action_space.sample()
                o, r, term, trunc, _ = env.step(a)
                obs.append(np.asarray(o, dtype=np.float64))
                acts.append(int(a))
                rews.append(float(r))
                if term or trunc:
                    break
            out.obs.append(np.stack(obs))
            out.actions.append(np.array(acts, dtype=np.int64))
            out.rewards.append(np.array(rews))
    finally:
        env.close()
    return out


def episode_features(network: Any, encoder: Any, steps_per_obs: int, trace_decay: float,
                     episodes: Episodes, seed: int) -> list[np.ndarray]:
    """Each episode's features (L_i + 1, N), as the agent sees them: all episodes side by side
    in one batched reservoir, each from the reset state (the closed-loop timing of
    :class:`~neuralalchemy.engine.Reservoir`)."""
    from neuralalchemy.agent_io import episode_rng, window
    from neuralalchemy.engine import Reservoir

    lengths = [len(o) for o in episodes.obs]
    obs = np.stack([np.vstack([o, np.repeat(o[-1:], max(lengths) - len(o), 0)])
                    for o in episodes.obs])  # (B, T, O), padded with each episode's last
    res = Reservoir(network, len(lengths))
    res.reset()
    rng = episode_rng(seed) if encoder.binary else None
    feats = np.zeros((len(lengths), obs.shape[1], network.size))
    prev = np.zeros((len(lengths), network.size))
    for t in range(obs.shape[1]):
        payload = window(obs[:, t], encoder, network.payload_levels, steps_per_obs, rng,
                         obs[:, t - 1] if t else None)
        counts = res.run(torch.as_tensor(np.ascontiguousarray(payload)), steps_per_obs)
        prev = counts.numpy().astype(np.float64) + (trace_decay * prev if t else 0.0)
        feats[:, t] = prev
    return [feats[i, :n] for i, n in enumerate(lengths)]


def regression_targets(episodes: Episodes, gamma: float) -> list[np.ndarray]:
    """Per episode (L_i, 1 + O): the discounted return to go from each step and the change of
    each observation dimension, scaled by its std over all episodes."""
    deltas = [np.diff(o, axis=0) for o in episodes.obs]
    scale = np.concatenate(deltas).std(0) if deltas else np.ones(1)
    scale = np.where(scale > 1e-9, scale, 1.0)
    out = []
    for r, d in zip(episodes.rewards, deltas):
        g = np.empty(len(r))
        acc = 0.0
        for t in range(len(r) - 1, -1, -1):
            acc = r[t] + gamma * acc
            g[t] = acc
        out.append(np.column_stack([g, d / scale]))
    return out


def evidence_table(feats: list[list[np.ndarray]], actions: list[list[np.ndarray]],
                   targets: list[list[np.ndarray]], n_actions: int) -> np.ndarray:
    """``E`` (T,) for one candidate: per task, the summed per-action log evidence of the
    targets on that candidate's features (state before each action; features normalised over
    all tasks, plus a bias column)."""
    from neuralalchemy.vecfeatures import STD_FLOOR

    xs = [[f[:-1] for f in task] for task in feats]
    allx = np.concatenate([x for task in xs for x in task])
    mean, std = allx.mean(0), np.maximum(allx.std(0), STD_FLOOR)
    out = np.zeros(len(feats))
    for t, (task_x, task_a, task_y) in enumerate(zip(xs, actions, targets)):
        x = (np.concatenate(task_x) - mean) / std
        x = np.column_stack([x, np.ones(len(x))])
        a, y = np.concatenate(task_a), np.concatenate(task_y)
        out[t] = sum(log_evidence(x[a == k], y[a == k]) for k in range(n_actions))
    return out


# ---------------------------------------------------------------- the hierarchy
@dataclass
class ReservoirPrior:
    """What SVI learned about the family's reservoir hyperparameters."""

    names: list[str]
    candidates: np.ndarray   # (G, P) in u
    evidence: np.ndarray     # (T, G) log evidence of each training task under each candidate
    m_loc: np.ndarray        # (P,) posterior mean of m
    m_scale: np.ndarray      # (P,) posterior std of m
    s: np.ndarray            # (P,) posterior median of s
    elbo: np.ndarray         # per SVI step
    chosen: int              # the predictive's mode: the candidate the agent runs

    def predictive(self) -> np.ndarray:
        """``π_g`` (G,): a new task's prior probability of each candidate."""
        s = np.sqrt(self.s ** 2 + self.m_scale ** 2)
        logp = -0.5 * (((self.candidates - self.m_loc) / s) ** 2).sum(1)
        return _softmax(logp)

    def task_posteriors(self) -> np.ndarray:
        """(T, G): each training task's posterior over candidates."""
        return np.stack([task_posterior(self, e) for e in self.evidence])

    def values(self, g: int | None = None) -> dict[str, float]:
        """Hyperparameter values of candidate ``g`` (default: the chosen one)."""
        return from_unconstrained(self.candidates[self.chosen if g is None else g])

    def to_extras(self) -> dict[str, np.ndarray]:
        """Arrays stored beside the readout prior (``extra.rprior.*``)."""
        return {"rprior.names": np.array(self.names), "rprior.candidates": self.candidates,
                "rprior.evidence": self.evidence, "rprior.m_loc": self.m_loc,
                "rprior.m_scale": self.m_scale, "rprior.s": self.s, "rprior.elbo": self.elbo,
                "rprior.chosen": np.array(self.chosen)}

    @classmethod
    def from_extras(cls, ex: dict[str, np.ndarray]) -> ReservoirPrior | None:
        """The stored prior, or None when meta-training kept the configured reservoir."""
        if "rprior.candidates" not in ex:
            return None
        def arr(k: str) -> np.ndarray:
            return np.asarray(ex[f"rprior.{k}"])

        return cls([str(n) for n in ex["rprior.names"]], arr("candidates"), arr("evidence"),
                   arr("m_loc"), arr("m_scale"), arr("s"), arr("elbo"), int(ex["rprior.chosen"]))


def task_posterior(prior: ReservoirPrior, evidence: np.ndarray) -> np.ndarray:
    """A task's posterior over candidates from its evidence (G,): ``∝ π_g · exp E_g``."""
    return _softmax(np.log(prior.predictive() + 1e-300) + evidence)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def model(evidence: torch.Tensor, cand: torch.Tensor, center: torch.Tensor,
          width: torch.Tensor) -> None:
    """The hierarchy of the module docstring (sites ``m``, ``s``; each task's candidate ``c_t``
    summed out exactly: ``log p(D_t | m, s) = logsumexp_g (log π_g + E_t,g)``)."""
    import pyro
    import pyro.distributions as dist

    m = pyro.sample("m", dist.Normal(center, width).to_event(1))
    s = pyro.sample("s", dist.LogNormal(torch.log(width / 2), 1.0).to_event(1))
    logp = dist.Normal(m.unsqueeze(-2), s.unsqueeze(-2)).log_prob(cand).sum(-1)  # (…, G)
    logp = logp - torch.logsumexp(logp, -1, keepdim=True)
    with pyro.plate("tasks", evidence.shape[0]):
        pyro.factor("data", torch.logsumexp(logp.unsqueeze(-2) + evidence, -1))


def fit_reservoir_prior(evidence: np.ndarray, cand: np.ndarray, center: np.ndarray,
                        width: np.ndarray, steps: int = 1500, lr: float = 0.02,
                        seed: int = 0, names: list[str] | None = None) -> ReservoirPrior:
    """Fit :func:`model` with SVI (``Trace_ELBO``, an ``AutoNormal`` guide on ``m`` and ``s``)."""
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal, init_to_value
    from pyro.optim import ClippedAdam

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    t = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in
         (("evidence", evidence), ("cand", cand), ("center", center), ("width", width))}
    # start m at the evidence-weighted mean of the candidates each task prefers
    post = torch.softmax(t["evidence"], -1)                        # (T, G)
    start = (post @ t["cand"]).mean(0)
    init = {"m": start, "s": t["width"] / 2}

    def fixed(*_: Any) -> None:
        model(t["evidence"], t["cand"], t["center"], t["width"])

    guide = AutoNormal(fixed, init_loc_fn=init_to_value(values=init),
                       init_scale=0.01)
    svi = SVI(fixed, guide, ClippedAdam({"lr": lr, "lrd": 0.1 ** (1 / max(steps, 1))}),
              Trace_ELBO())
    elbo = np.array([-svi.step() for _ in range(steps)])
    with torch.no_grad():
        med = guide.median()
        m_scale = pyro.param("AutoNormal.scales.m").detach().numpy().copy()
    prior = ReservoirPrior(names or list(HYPER_NAMES), np.asarray(cand, dtype=np.float64),
                           np.asarray(evidence, dtype=np.float64), med["m"].numpy().copy(),
                           m_scale, med["s"].numpy().copy(), elbo, 0)
    prior.chosen = int(np.argmax(prior.predictive()))
    return prior
