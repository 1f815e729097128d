"""Transfer learning (``alchemy train --init RUN``) and curricula (``curriculum.stages``).

Transfer
--------
A run started from a source agent takes the source's *network* (every weight, including weights
a plasticity rule adapted), its *encoder* (receptive-field ranges) and its *readout*; the
``reservoir``, ``encoder`` and ``readout`` sections of the new config are replaced by the
source's, because the readout only means something on the features it was trained on. What is
trained on the new task:

* the reservoir stays frozen (as in every RL run);
* the readout is fine-tuned from the source's weights by the configured learner
  (:meth:`~neuralalchemy.learners.base.Learner.warm_start`): ARS continues its random search
  from them, PPO starts its actor there (its critic at zero), BLQ centres its Gaussian prior on
  them (Bayesian transfer: the posterior leaves the source only as far as the new data say);
* the feature normalisation is fine-tuned too, or kept fixed with
  ``training.init_freeze: normalisation``.

The source and the new environment must agree on the observation size and the action space.

Curriculum
----------
``curriculum.stages`` is a list of ``{env, steps[, target_return]}``: stage *k* is an ordinary run
on its env spec (``CartPoleTask-v1@length=0.25`` sets a task parameter) that starts from stage
*k−1*'s agent and stops at its target or its step budget; the steps a stage leaves unused (it
reached its target early) are added to the next stage's budget, so the curriculum never spends
more than the sum of the stages' steps. Every stage leaves its own run folder, the last one is the
newest, so ``alchemy compile`` picks the final agent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuralalchemy.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from neuralalchemy.config import Config, ConfigError, CurriculumConfig
from neuralalchemy.envs import EnvInfo
from neuralalchemy.learners.base import Readout

ADOPTED_SECTIONS = ("reservoir", "encoder", "readout")
"""Config sections a transferred run takes from its source."""


def load_source(path: str | Path) -> Checkpoint:
    """The source agent of ``training.init``: a run folder or a checkpoint file."""
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"training.init: {exc}") from None


def source_readout(ckpt: Checkpoint) -> Readout:
    """The source's greedy readout (weights, bias and normalisation)."""
    bias = ckpt.bias if ckpt.bias is not None else ckpt.theta[:, 0] * 0.0
    return Readout(ckpt.theta.copy(), bias.copy(), ckpt.feat_mean.copy(), ckpt.feat_std.copy())


def adopt_source(cfg: Config, ckpt: Checkpoint, info: EnvInfo) -> Config:
    """``cfg`` with the source's network-defining sections; a clear error when the source's
    environment does not fit ``info``."""
    src = ckpt.env
    theirs = (int(src["obs_dim"]), int(src["n_actions"]), bool(src["discrete"]))
    ours = (info.obs_dim, info.n_actions, info.discrete)
    if theirs != ours:
        raise ConfigError(
            f"training.init: the source agent was trained on {src['env_id']} ({theirs[0]} "
            f"observations, {theirs[1]} {'discrete ' if theirs[2] else ''}actions) and cannot "
            f"act in {info.env_id} ({ours[0]}, {ours[1]} {'discrete ' if ours[2] else ''}"
            "actions); start from an agent of a matching environment")
    if ckpt.theta.shape[1] != ckpt.network.size:
        raise ConfigError("training.init: the source's readout does not match its network; "
                          "re-train the source")
    return dataclasses.replace(cfg, **{k: getattr(ckpt.config, k) for k in ADOPTED_SECTIONS})


Trainer = Callable[..., Any]


def train_curriculum(cfg: Config, trainer: Trainer, out: Path | None = None,
                     **kwargs: Any) -> list[Any]:
    """Run the stages of ``cfg.curriculum`` in order with ``trainer`` (:func:`neuralalchemy.train.
    train`), each starting from the previous stage's run; return every stage's result.

    The first stage starts from ``cfg.training.init`` when one is set, else from scratch.
    """
    results: list[Any] = []
    init = cfg.training.init
    unused = 0
    for stage in cfg.curriculum.stages:
        budget = int(stage["steps"]) + unused
        training = dataclasses.replace(
            cfg.training, steps=budget, init=init,
            target_return=stage.get("target_return", cfg.training.target_return))
        stage_cfg = dataclasses.replace(cfg, env=stage["env"], training=training,
                                        curriculum=CurriculumConfig())
        result = trainer(stage_cfg, out=out, **kwargs)
        results.append(result)
        init = str(result.run_dir)
        unused = max(0, budget - int(result.summary["env_steps"]))
    return results
