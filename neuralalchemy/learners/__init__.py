"""Readout learners. Each trains the linear readout of a fixed reservoir on an environment.

``LEARNERS`` maps the config's ``training.algorithm`` to a factory taking a
:class:`~neuralalchemy.learners.base.Context`.
"""

from __future__ import annotations

from neuralalchemy.learners.base import Context, Learner, LearnerFactory


def _ars(ctx: Context) -> Learner:
    from neuralalchemy.learners.ars import Ars
    return Ars(ctx)


def _ppo(ctx: Context) -> Learner:
    from neuralalchemy.learners.ppo import Ppo
    return Ppo(ctx)


def _blq(ctx: Context) -> Learner:
    from neuralalchemy.learners.blq import Blq
    return Blq(ctx)


def _mpc(ctx: Context) -> Learner:
    from neuralalchemy.learners.mpc import Mpc
    return Mpc(ctx)


LEARNERS: dict[str, LearnerFactory] = {"ars": _ars, "ppo": _ppo, "blq": _blq, "mpc": _mpc}


def make_learner(ctx: Context) -> Learner:
    """The learner the config names."""
    return LEARNERS[ctx.cfg.training.algorithm](ctx)
