"""Optimizers, regularisation and learning-rate schedules shared by every gradient-trained readout.

One implementation each, chosen by name from :class:`~neuralalchemy.config.TrainingConfig`:

* optimizers (``torch.optim``): ``sgd`` (plain), ``momentum`` (SGD with heavy-ball momentum
  ``μ``), ``rmsprop`` (with momentum ``μ``), ``adam``;
* schedules, as a factor ``g(p)`` of the base rate at progress ``p ∈ [0, 1]`` through the horizon:
  ``constant`` ``g = 1``, ``linear`` ``g = 1 − p``, ``cosine`` ``g = (1 + cos πp) / 2``
  (held at ``g(1)`` past the horizon);
* the readout penalty ``l1·Σ|θ| + l2·Σθ²`` (weights only, never biases). Under a Gaussian prior
  ``θ ~ N(0, 1/λ)`` the L2 term is the negative log prior with ``λ = 2·l2``, which is how the
  closed-form Bayesian learner uses it (:func:`l2_precision`);
* stochastic regularisers applied while training only, each drawn from an explicit generator
  so that a seed fixes them: additive Gaussian noise ``x + σ·ε`` (:func:`gaussian_noise`),
  multiplicative weight noise ``w·(1 + σ·ε)`` (:func:`weight_noise`) and inverted dropout
  ``x·m/(1 − p)``, ``m ~ Bernoulli(1 − p)`` (:func:`dropout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from neuralalchemy.config import TrainingConfig


def schedule_factor(kind: str, progress: float) -> float:
    """The learning-rate multiplier of schedule ``kind`` at ``progress`` (clipped to [0, 1])."""
    p = min(max(float(progress), 0.0), 1.0)
    table: dict[str, Callable[[float], float]] = {
        "constant": lambda _: 1.0,
        "linear": lambda q: 1.0 - q,
        "cosine": lambda q: 0.5 * (1.0 + math.cos(math.pi * q)),
    }
    if kind not in table:
        raise ValueError(f"unknown lr schedule {kind!r}: choose one of {', '.join(table)}")
    return table[kind](p)


def _sgd(params: list[Any], tr: TrainingConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=tr.lr)


def _momentum(params: list[Any], tr: TrainingConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=tr.lr, momentum=tr.momentum)


def _rmsprop(params: list[Any], tr: TrainingConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=tr.lr, alpha=0.99, eps=1e-5, momentum=tr.momentum)


def _adam(params: list[Any], tr: TrainingConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=tr.lr, eps=1e-5)


OPTIMIZERS: dict[str, Callable[[list[Any], TrainingConfig], torch.optim.Optimizer]] = {
    "sgd": _sgd, "momentum": _momentum, "rmsprop": _rmsprop, "adam": _adam,
}


def make_optimizer(params: Iterable[Any], tr: TrainingConfig) -> torch.optim.Optimizer:
    """The optimizer ``tr.optimizer`` over ``params`` at base rate ``tr.lr``.

    ``params`` holds tensors, or torch parameter groups (dicts with ``"params"`` and optionally
    their own ``"lr"``, which :class:`Schedule` scales like the base rate)."""
    if tr.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {tr.optimizer!r}: choose one of "
                         f"{', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[tr.optimizer](list(params), tr)


class Schedule:
    """Sets every group's rate to ``base · g(env_steps / horizon)``; call :meth:`update` before
    each optimisation phase. The horizon is ``tr.lr_horizon`` env steps, else ``tr.steps``."""

    def __init__(self, optimizer: torch.optim.Optimizer, tr: TrainingConfig):
        self.optimizer = optimizer
        self.kind = tr.lr_schedule
        self.horizon = tr.lr_horizon or tr.steps
        self.base = [float(g["lr"]) for g in optimizer.param_groups]
        schedule_factor(self.kind, 0.0)  # fail early on an unknown name

    def factor(self, env_steps: int) -> float:
        """The multiplier after ``env_steps`` environment steps."""
        return schedule_factor(self.kind, env_steps / self.horizon)

    def update(self, env_steps: int) -> float:
        """Apply the rate for ``env_steps``; return the first group's new rate."""
        g = self.factor(env_steps)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * g
        return float(self.optimizer.param_groups[0]["lr"])


def readout_penalty(weights: Iterable[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """``l1·Σ|w| + l2·Σw²`` over the given weight tensors (a differentiable scalar)."""
    total = torch.zeros((), dtype=torch.float64)
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + l2 * (w * w).sum()
    return total


def l2_precision(l2: float) -> float:
    """The Gaussian prior precision equivalent to the penalty ``l2·Σθ²`` (``λ = 2·l2``)."""
    return 2.0 * float(l2)


# ---------------------------------------------------------------- stochastic regularisers
def gaussian_noise(x: torch.Tensor, std: float, gen: torch.Generator | None) -> torch.Tensor:
    """``x + std·ε``, ``ε ~ N(0, 1)`` elementwise; ``x`` itself when ``std`` is 0."""
    if std <= 0:
        return x
    return x + std * torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)


def weight_noise(w: torch.Tensor, std: float, gen: torch.Generator | None) -> torch.Tensor:
    """Multiplicative noise ``w·(1 + std·ε)``: zeros stay zero and signs flip only past
    ``ε < −1/std``; ``w`` itself when ``std`` is 0."""
    if std <= 0:
        return w
    return w * (1.0 + std * torch.randn(w.shape, generator=gen, dtype=w.dtype, device=w.device))


def dropout(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout: each element kept with probability ``1 − p`` and scaled by
    ``1/(1 − p)``, so the expectation is unchanged; ``x`` itself when ``p`` is 0."""
    if p <= 0:
        return x
    if p >= 1:
        raise ValueError(f"dropout probability must be below 1, got {p}")
    keep = torch.rand(x.shape, generator=gen, device=x.device) >= p
    return x * keep.to(x.dtype) / (1.0 - p)


def softmax_lbfgs(z: Any, labels: Any, classes: int, l2: float,
                  iterations: int = 100) -> tuple[Any, Any]:
    """Multinomial logistic regression (the softmax readout): minimise the mean cross-entropy
    of ``softmax(W·z + b)`` plus ``l2``·‖W‖² over (W, b) by L-BFGS with a strong-Wolfe line
    search, from zero; ``z`` (rows, F), integer ``labels``; returns (W (classes, F), b) as
    float64 numpy arrays."""
    zt = torch.as_tensor(z, dtype=torch.float64)
    yt = torch.as_tensor(labels, dtype=torch.int64)
    w = torch.zeros(classes, zt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iterations, tolerance_grad=1e-7,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(zt @ w.T + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()
