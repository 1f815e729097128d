"""The meta-prior: a hierarchical Bayesian linear model over per-task readouts, fitted with SVI.

Each training task ``t`` has its own Q readout ``w_t`` (A actions × D = features + 1 weights), and
every readout is drawn from one shared, learned prior::

    μ      ~ N(0, s_μ²)                  (A, D)     prior mean of a readout weight
    τ      ~ LogNormal(log τ₀, s_τ²)     (A, D)     residual std of a weight across tasks
    U      ~ N(0, s_U²)                  (A·D, k)   directions along which tasks differ
    s_ℓ    ~ LogNormal(log ℓ₀, 2²)                  spread of the value level across tasks
    w_t    ~ N(μ, U Uᵀ + s_ℓ² v vᵀ + diag τ²)       per task t (plate over tasks), all actions
    y_t,a  ~ N(X_t,a · w_t,a, σ_t²)                 the task's regression data for action a

that is ``w_t = μ + U z_t + τ ⊙ ε_t`` with a task embedding ``z_t ~ N(0, I_k)``: a factor-analytic
prior (rank ``k``; ``k = 0`` is the diagonal prior). The directions span all actions' readouts
jointly, so the prior knows, for instance, that the actions' values rise and fall together from
task to task (their difference, which is what picks the action, varies much less); ``v`` (1 on every
action's bias) is one such direction, given to the model: how much value a task promises shifts
all actions' values together and leaves the policy alone. Readouts of
related tasks differ along a few directions; a new task then has to pin down mostly the ``k``
coordinates of its embedding, while the shared structure stays where the tasks agree.

The data enter only through their sufficient statistics (``XᵀX``, ``Xᵀy``, ``yᵀy``, ``n``), so
the log-likelihood is exact and costs O(A·D²) per task whatever the number of transitions::

    log p(y | w) = −n/2 · log 2πσ² − (yᵀy − 2 wᵀXᵀy + wᵀXᵀX w) / 2σ²

Inference is Pyro's stochastic variational inference (``SVI`` with ``Trace_ELBO``) with a
mean-field ``AutoNormal`` guide over ``μ``, ``τ`` (in log space) and every ``w_t``. The prior for
a new task is the posterior predictive of ``w``: ``N(E[μ], E[U]E[U]ᵀ + diag(E[τ]² + Var[μ]))``,
which :mod:`neuralalchemy.learners.blq` turns into a closed-form posterior from a few episodes.

A family with discrete task parameters has *kinds* of tasks (CartPole-flip's two directions),
whose readouts sit around different means: :func:`mixture_model` gives each kind its own ``μ_k``
(the training tasks' kinds observed, ``π ~ Dirichlet(1)``) and shares ``τ``, ``U`` and the level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SuffStats = dict[str, torch.Tensor]
"""``xtx`` (T, A, D, D), ``xty`` (T, A, D), ``yty`` (T, A), ``n`` (T, A), ``noise_var`` (T,)."""


@dataclass
class HierarchyFit:
    """What SVI learned: the meta-prior and the fit's trace."""

    mu_mean: np.ndarray      # (A, D) posterior mean of μ
    mu_std: np.ndarray       # (A, D) posterior std of μ
    tau: np.ndarray          # (A, D) posterior median of τ
    factor: np.ndarray       # (A·D, k) posterior median of U
    task_mean: np.ndarray    # (T, A, D) posterior means of the task readouts w_t
    elbo: np.ndarray         # ELBO per SVI step (higher is better)

    def predictive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A new task's readout ``N(mean, factor·factorᵀ + diag std²)``: (mean, std, factor)."""
        return self.mu_mean, np.sqrt(self.tau ** 2 + self.mu_std ** 2), self.factor


@dataclass(frozen=True)
class HyperPrior:
    """The fixed top of the hierarchy."""

    mu_scale: float = 10.0   # s_μ
    tau_loc: float = 0.3     # τ₀
    tau_scale: float = 1.5   # s_τ (log space)
    factor_scale: float = 1.0  # s_U
    rank: int = 3            # k
    level_loc: float = 10.0  # prior median of s_level


def suff_stats(x_by_action: list[list[np.ndarray]], y_by_action: list[list[np.ndarray]],
               noise_var: np.ndarray) -> SuffStats:
    """Sufficient statistics of per-task, per-action regressions ``y ≈ X w``.

    ``x_by_action[t][a]`` is (n, D) and ``y_by_action[t][a]`` is (n,); ``noise_var`` is (T,).
    """
    xtx = np.stack([np.stack([x.T @ x for x in xs]) for xs in x_by_action])
    xty = np.stack([np.stack([x.T @ y for x, y in zip(xs, ys)])
                    for xs, ys in zip(x_by_action, y_by_action)])
    yty = np.stack([np.array([y @ y for y in ys]) for ys in y_by_action])
    n = np.stack([np.array([len(y) for y in ys], dtype=np.float64) for ys in y_by_action])
    return {"xtx": _t(xtx), "xty": _t(xty), "yty": _t(yty), "n": _t(n),
            "noise_var": _t(noise_var)}


def _t(a: np.ndarray) -> torch.Tensor:
    """numpy → float64 torch tensor (the fit runs in double precision)."""
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def gaussian_loglik(w: torch.Tensor, stats: SuffStats) -> torch.Tensor:
    """``log p(y_t | w_t)`` summed over actions, per task: (T,) from ``w`` (…, T, A, D)."""
    s2 = stats["noise_var"][:, None]
    quad = torch.einsum("...tai,taij,...taj->...ta", w, stats["xtx"], w)
    lin = torch.einsum("...tai,tai->...ta", w, stats["xty"])
    sq = stats["yty"] - 2 * lin + quad
    ll = -0.5 * stats["n"] * torch.log(2 * math.pi * s2) - sq / (2 * s2)
    return ll.sum(-1)


def _shared_covariance(n_actions: int, dim: int,
                       hyper: HyperPrior) -> tuple[torch.Tensor, torch.Tensor]:
    """The covariance sites every task shares (Pyro ``tau``, ``level``, ``U``): the per-weight
    spread ``τ`` (A, D) and the factor ``[U, s_ℓ·v]`` (A·D, k + 1) of ``U Uᵀ + s_ℓ² v vᵀ``."""
    import pyro
    import pyro.distributions as dist

    zeros = torch.zeros(n_actions, dim, dtype=torch.float64)
    tau = pyro.sample("tau", dist.LogNormal(zeros + math.log(hyper.tau_loc),
                                            hyper.tau_scale).to_event(2))
    level = pyro.sample("level", dist.LogNormal(torch.tensor(math.log(hyper.level_loc),
                                                             dtype=torch.float64), 2.0))
    columns = [level * level_direction(n_actions, dim)[:, None]]
    if hyper.rank > 0:
        columns.insert(0, pyro.sample("U", dist.Normal(
            torch.zeros(n_actions * dim, hyper.rank, dtype=torch.float64),
            hyper.factor_scale).to_event(2)))
    return tau, torch.cat(columns, dim=-1)


def model(stats: SuffStats, hyper: HyperPrior) -> None:
    """The hierarchical model of the module docstring (Pyro sites ``mu``, ``tau``, ``w``)."""
    import pyro
    import pyro.distributions as dist

    n_tasks, n_actions, dim = stats["xty"].shape
    zeros = torch.zeros(n_actions, dim, dtype=torch.float64)
    mu = pyro.sample("mu", dist.Normal(zeros, hyper.mu_scale).to_event(2))
    tau, factor = _shared_covariance(n_actions, dim, hyper)
    w_prior = dist.LowRankMultivariateNormal(mu.reshape(-1), factor, tau.reshape(-1) ** 2)
    with pyro.plate("tasks", n_tasks):
        w = pyro.sample("w", w_prior.expand([n_tasks]))  # (…, T, A·D)
        w = w.reshape(*w.shape[:-1], n_actions, dim)
        pyro.factor("q_data", gaussian_loglik(w, stats))


def fit_hierarchy(stats: SuffStats, steps: int = 2000, lr: float = 0.02, seed: int = 0,
                  hyper: HyperPrior | None = None) -> HierarchyFit:
    """Fit the model to ``stats`` with SVI (clipped Adam, ``steps`` steps, one ELBO sample)."""
    import pyro

    hyper = hyper or HyperPrior()
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    # start w_t at each task's ridge solution and μ at their mean: SVI then refines, not searches
    init_w = _ridge(stats, 1.0 / hyper.tau_loc ** 2)
    n_tasks, n_actions, dim = init_w.shape
    init = {"w": init_w.reshape(n_tasks, -1), "mu": init_w.mean(0),
            "tau": torch.full_like(init_w[0], hyper.tau_loc)}
    biases = init_w[:, :, -1].mean(1)
    init["level"] = torch.clamp(biases.std() if n_tasks > 1 else torch.tensor(1.0), min=1e-3)
    if hyper.rank > 0:
        init["U"] = _principal_directions(init_w, hyper.rank)
    med, mu_std, elbo = _svi(lambda s: model(s, hyper), init, stats, steps, lr)
    return HierarchyFit(med["mu"].numpy().copy(), mu_std.numpy().copy(), med["tau"].numpy().copy(),
                        _factor(med, hyper.rank, n_actions, dim),
                        med["w"].numpy().reshape(n_tasks, n_actions, dim), elbo)


def _svi(model_fn: Callable[[SuffStats], None], init: dict[str, torch.Tensor],
         stats: SuffStats, steps: int,
         lr: float) -> tuple[dict[str, torch.Tensor], torch.Tensor, np.ndarray]:
    """``steps`` of SVI (clipped Adam decaying to a tenth, ``Trace_ELBO``) with an
    ``AutoNormal`` guide started at ``init``: the guide's medians, the posterior std of ``mu``
    and the ELBO per step."""
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal, init_to_value
    from pyro.optim import ClippedAdam

    guide = AutoNormal(model_fn, init_loc_fn=init_to_value(values=init), init_scale=0.01)
    svi = SVI(model_fn, guide, ClippedAdam({"lr": lr, "lrd": 0.1 ** (1 / max(steps, 1))}),
              Trace_ELBO())
    elbo = np.empty(steps)
    for i in range(steps):
        elbo[i] = -svi.step(stats)
    with torch.no_grad():
        return guide.median(stats), pyro.param("AutoNormal.scales.mu").detach(), elbo


def _factor(med: dict[str, torch.Tensor], rank: int, n_actions: int, dim: int) -> np.ndarray:
    """The fitted low-rank factor ``[U, s_ℓ·v]`` (A·D, k + 1) from the guide's medians."""
    columns = [float(med["level"]) * level_direction(n_actions, dim).numpy()[:, None]]
    if rank > 0:
        columns.insert(0, med["U"].numpy())
    return np.concatenate(columns, axis=1)


@dataclass
class MixtureFit:
    """What SVI learned for a mixture prior: one mean per component, the rest shared."""

    means: np.ndarray        # (K, A, D) posterior means of the components' μ_k
    mu_std: np.ndarray       # (K, A, D) their posterior std
    weights: np.ndarray      # (K,) posterior mean of the mixing weights π
    tau: np.ndarray          # (A, D) posterior median of τ (shared)
    factor: np.ndarray       # (A·D, k + 1) posterior median of U and the level column (shared)
    task_mean: np.ndarray    # (T, A, D) posterior means of the task readouts w_t
    elbo: np.ndarray         # ELBO per SVI step (higher is better)

    def predictive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Component means and the covariance they share, ``factor·factorᵀ + diag std²``
        (``std²`` = τ² plus the weighted mean of the components' ``Var[μ_k]``):
        (means (K, A, D), std (A, D), factor)."""
        var_mu = np.einsum("k,kad->ad", self.weights, self.mu_std ** 2)
        return self.means, np.sqrt(self.tau ** 2 + var_mu), self.factor


def mixture_model(stats: SuffStats, hyper: HyperPrior, labels: torch.Tensor,
                  components: int) -> None:
    """The model of the module docstring with one prior mean per component: task ``t`` belongs
    to component ``c_t`` (observed while training: ``labels``), ``c_t ~ Categorical(π)``,
    ``π ~ Dirichlet(1)``, ``μ_k ~ N(0, s_μ²)`` and ``w_t ~ N(μ_{c_t}, U Uᵀ + s_ℓ² v vᵀ + diag τ²)``;
    ``τ``, ``U`` and the level are shared by all components."""
    import pyro
    import pyro.distributions as dist

    n_tasks, n_actions, dim = stats["xty"].shape
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(components, dtype=torch.float64)))
    with pyro.plate("components", components):
        mu = pyro.sample("mu", dist.Normal(
            torch.zeros(components, n_actions, dim, dtype=torch.float64),
            hyper.mu_scale).to_event(2))
    tau, factor = _shared_covariance(n_actions, dim, hyper)
    with pyro.plate("tasks", n_tasks):
        c = pyro.sample("c", dist.Categorical(weights), obs=labels)
        loc = mu.reshape(components, n_actions * dim)[c]
        w = pyro.sample("w", dist.LowRankMultivariateNormal(loc, factor, tau.reshape(-1) ** 2))
        pyro.factor("q_data", gaussian_loglik(w.reshape(n_tasks, n_actions, dim), stats))


def fit_mixture(stats: SuffStats, labels: np.ndarray, steps: int = 2000, lr: float = 0.02,
                seed: int = 0, hyper: HyperPrior | None = None) -> MixtureFit:
    """Fit :func:`mixture_model` to tasks whose components ``labels`` (T,) are known (values
    ``0 … K−1``, each present) with SVI (clipped Adam, ``Trace_ELBO``, an ``AutoNormal`` guide),
    starting every ``w_t`` at its ridge solution and each ``μ_k`` at its tasks' mean."""
    import pyro

    hyper = hyper or HyperPrior()
    labels = np.asarray(labels, dtype=np.int64)
    components = int(labels.max()) + 1
    if labels.min() < 0 or len(np.unique(labels)) != components:
        raise ValueError(f"labels must use every component 0..K-1, got {sorted(set(labels))}")
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    init_w = _ridge(stats, 1.0 / hyper.tau_loc ** 2)
    n_tasks, n_actions, dim = init_w.shape
    c = torch.as_tensor(labels)
    means = torch.stack([init_w[c == k].mean(0) for k in range(components)])
    counts = torch.as_tensor(np.bincount(labels, minlength=components), dtype=torch.float64)
    init = {"w": init_w.reshape(n_tasks, -1), "mu": means,
            "weights": (counts + 1) / (counts.sum() + components),
            "tau": torch.full_like(init_w[0], hyper.tau_loc)}
    biases = init_w[:, :, -1].mean(1)
    init["level"] = torch.clamp(biases.std() if n_tasks > 1 else torch.tensor(1.0), min=1e-3)
    if hyper.rank > 0:
        init["U"] = _principal_directions(init_w - means[c], hyper.rank)

    def model_(s: SuffStats) -> None:
        mixture_model(s, hyper, c, components)

    med, mu_std, elbo = _svi(model_, init, stats, steps, lr)
    weights = (counts + 1) / (counts.sum() + components)  # E[π | labels] (conjugate)
    return MixtureFit(med["mu"].numpy().copy(), mu_std.numpy().copy(), weights.numpy(),
                      med["tau"].numpy().copy(), _factor(med, hyper.rank, n_actions, dim),
                      med["w"].numpy().reshape(n_tasks, n_actions, dim), elbo)


def level_direction(n_actions: int, dim: int) -> torch.Tensor:
    """The common-mode direction of the value level: 1 on every action's bias weight."""
    v = torch.zeros(n_actions * dim, dtype=torch.float64)
    v[dim - 1::dim] = 1.0
    return v


def _principal_directions(w: torch.Tensor, rank: int) -> torch.Tensor:
    """Top-``rank`` principal directions of the task readouts ``w`` (T, A, D), scaled by their
    std across tasks: the starting loadings ``U`` (A·D, k)."""
    dev = (w - w.mean(0, keepdim=True)).reshape(w.shape[0], -1)
    out = torch.zeros(dev.shape[1], rank, dtype=torch.float64)
    _, s, vh = torch.linalg.svd(dev, full_matrices=False)
    k = min(rank, len(s))
    out[:, :k] = vh[:k].T * s[:k] / math.sqrt(max(w.shape[0] - 1, 1))
    return out


def _ridge(stats: SuffStats, precision: float) -> torch.Tensor:
    """Per-task, per-action ridge solutions ``(XᵀX/σ² + λI)⁻¹ Xᵀy/σ²`` (T, A, D)."""
    s2 = stats["noise_var"][:, None, None, None]
    eye = torch.eye(stats["xtx"].shape[-1], dtype=torch.float64)
    lhs = stats["xtx"] / s2 + precision * eye
    return torch.linalg.solve(lhs, stats["xty"] / s2[..., 0])


def pooled_readout(stats: SuffStats, precision: float = 1.0) -> np.ndarray:
    """One readout for every task (the non-Bayesian multi-task baseline): ridge regression on
    all tasks' data pooled, ``(Σ XᵀX + λσ²I)⁻¹ Σ Xᵀy`` per action (A, D)."""
    xtx, xty = stats["xtx"].sum(0), stats["xty"].sum(0)
    s2 = float(stats["noise_var"].mean())
    eye = torch.eye(xtx.shape[-1], dtype=torch.float64)
    return torch.linalg.solve(xtx + precision * s2 * eye, xty).numpy()
