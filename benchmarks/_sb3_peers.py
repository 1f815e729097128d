"""Stable-Baselines3 peers for ``rl_sample_efficiency.py``, on rl-baselines3-zoo's hyperparameters.

Benchmark-only: needs the ``bench`` extra (``pip install -e '.[bench]'``); nothing under
``neuralalchemy/`` imports SB3.

The hyperparameters below are copied verbatim from rl-baselines3-zoo (github.com/DLR-RM/
rl-baselines3-zoo, commit 22e3ff2 of 2026-04-23; the files last changed in eec15dc, 2026-04-01):
``hyperparams/ppo.yml``, ``hyperparams/dqn.yml`` and ``hyperparams/ppo_lstm.yml`` (sb3-contrib's
RecurrentPPO). The zoo conventions applied (as in ``rl_zoo3/exp_manager.py``):

* ``normalize: true`` → ``VecNormalize(gamma=<the algorithm's gamma>)`` on the training envs; the
  evaluation envs share the training statistics (copied before each evaluation, frozen) and see
  raw rewards.
* ``lin_<x>`` → a linear schedule from ``x`` to 0 over the run; other numbers are constants.
* ``policy_kwargs`` strings are evaluated with ``nn`` = ``torch.nn``.
* ``n_envs`` copies in a ``DummyVecEnv`` (``make_vec_env``, seeded ``seed``…``seed + n_envs − 1``).

Budgets: the zoo runs for ``n_timesteps``; this benchmark runs ``budget`` steps. Schedules (the
linear ones, and DQN's exploration fraction) span ``max(n_timesteps, budget)`` steps, so a run
with a smaller budget is the published run cut short, and one with a larger budget is the
published run stretched as ``train.py -n <budget>`` would.

Our environment ids map to the zoo's: ``MaskedCartPole-v1`` → ``CartPoleNoVel-v1``,
``MaskedPendulum-v1`` → ``PendulumNoVel-v1`` (the same observations), ``SparseCartPole-v1`` →
``CartPole-v1``'s hyperparameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

EVAL_SEED = 1_000_000  # evaluation episode i starts from seed EVAL_SEED + i (as ours)

# rl-baselines3-zoo hyperparams/ppo.yml (commit 22e3ff2)
ZOO_PPO: dict[str, dict[str, Any]] = {
    "CartPole-v1": {  # "# Tuned"
        "n_envs": 8, "n_timesteps": 1e5, "policy": "MlpPolicy", "n_steps": 32,
        "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
        "learning_rate": "lin_0.001", "clip_range": "lin_0.2",
    },
    "Acrobot-v1": {
        "normalize": True, "n_envs": 16, "n_timesteps": 1e6, "policy": "MlpPolicy",
        "n_steps": 256, "gae_lambda": 0.94, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0,
    },
    "MountainCar-v0": {
        "normalize": True, "n_envs": 16, "n_timesteps": 1e6, "policy": "MlpPolicy",
        "n_steps": 16, "gae_lambda": 0.98, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0,
    },
    "Pendulum-v1": {  # "# Tuned"
        "n_envs": 4, "n_timesteps": 1e5, "policy": "MlpPolicy", "n_steps": 1024,
        "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
        "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4,
    },
}

# rl-baselines3-zoo hyperparams/dqn.yml (commit 22e3ff2)
ZOO_DQN: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3, "batch_size": 64,
        "buffer_size": 100000, "learning_starts": 1000, "gamma": 0.99,
        "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
        "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
        "policy_kwargs": "dict(net_arch=[256, 256])",
    },
    "MountainCar-v0": {
        "n_timesteps": 1.2e5, "policy": "MlpPolicy", "learning_rate": 4e-3, "batch_size": 128,
        "buffer_size": 10000, "learning_starts": 1000, "gamma": 0.98,
        "target_update_interval": 600, "train_freq": 16, "gradient_steps": 8,
        "exploration_fraction": 0.2, "exploration_final_eps": 0.07,
        "policy_kwargs": "dict(net_arch=[256, 256])",
    },
    "Acrobot-v1": {
        "n_timesteps": 1e5, "policy": "MlpPolicy", "learning_rate": 6.3e-4, "batch_size": 128,
        "buffer_size": 50000, "learning_starts": 0, "gamma": 0.99,
        "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
        "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
        "policy_kwargs": "dict(net_arch=[256, 256])",
    },
}

# rl-baselines3-zoo hyperparams/ppo_lstm.yml (commit 22e3ff2): sb3-contrib RecurrentPPO
_LSTM_KWARGS = ("dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, "
                "enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64]))")
ZOO_PPO_LSTM: dict[str, dict[str, Any]] = {
    "CartPoleNoVel-v1": {
        "normalize": True, "n_envs": 8, "n_timesteps": 1e5, "policy": "MlpLstmPolicy",
        "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
        "ent_coef": 0.0, "learning_rate": "lin_0.001", "clip_range": "lin_0.2",
        "policy_kwargs": _LSTM_KWARGS,
    },
    "PendulumNoVel-v1": {
        "normalize": True, "n_envs": 4, "n_timesteps": 1e5, "policy": "MlpLstmPolicy",
        "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
        "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4,
        "policy_kwargs": _LSTM_KWARGS,
    },
}

# peer name -> (zoo table, our env id -> zoo env id whose hyperparameters apply)
PEERS: dict[str, tuple[dict[str, dict[str, Any]], dict[str, str]]] = {
    "ppo": (ZOO_PPO, {"CartPole-v1": "CartPole-v1", "Acrobot-v1": "Acrobot-v1",
                      "MountainCar-v0": "MountainCar-v0", "Pendulum-v1": "Pendulum-v1",
                      "SparseCartPole-v1": "CartPole-v1"}),
    "dqn": (ZOO_DQN, {"CartPole-v1": "CartPole-v1", "Acrobot-v1": "Acrobot-v1",
                      "MountainCar-v0": "MountainCar-v0", "SparseCartPole-v1": "CartPole-v1"}),
    "recurrentppo": (ZOO_PPO_LSTM, {"MaskedCartPole-v1": "CartPoleNoVel-v1",
                                    "MaskedPendulum-v1": "PendulumNoVel-v1"}),
}
LABELS = {"ppo": "SB3 PPO", "dqn": "SB3 DQN", "recurrentppo": "sb3-contrib RecurrentPPO"}


def zoo_entry(peer: str, env_id: str) -> tuple[str, dict[str, Any]] | None:
    """(zoo env id, its hyperparameters) of a peer on one of our envs; None: not applicable."""
    table, ids = PEERS[peer]
    zoo_id = ids.get(env_id)
    return None if zoo_id is None else (zoo_id, dict(table[zoo_id]))


def available() -> str | None:
    """None when SB3 and sb3-contrib import; else why not."""
    try:
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e '.[bench]')"
    return None


class ZooLinear:
    """Zoo's ``lin_<x>``, ``x · progress_remaining``, over ``horizon`` env steps of a run of
    ``budget`` steps (SB3 passes progress relative to the budget)."""

    def __init__(self, initial: float, budget: int, horizon: int):
        self.initial, self.scale = initial, budget / horizon

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * max(0.0, 1.0 - (1.0 - progress_remaining) * self.scale)


class ZooExploration:
    """DQN's epsilon: 1 → ``final`` over ``fraction · horizon`` env steps, then ``final``."""

    def __init__(self, start: float, final: float, fraction: float, budget: int, horizon: int):
        self.start, self.final, self.fraction = start, final, fraction
        self.scale = budget / horizon

    def __call__(self, progress_remaining: float) -> float:
        done = (1.0 - progress_remaining) * self.scale
        if done >= self.fraction:
            return self.final
        return self.start + done * (self.final - self.start) / self.fraction


def model_kwargs(hp: dict[str, Any], budget: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Zoo preprocessing: (algorithm kwargs, run settings: n_envs, normalize, horizon, policy)."""
    import torch.nn as nn

    hp = dict(hp)
    horizon = max(int(hp.pop("n_timesteps")), budget)
    run = {"n_envs": int(hp.pop("n_envs", 1)), "normalize": hp.pop("normalize", False),
           "policy": hp.pop("policy"), "horizon": horizon}
    for key in ("learning_rate", "clip_range"):
        value = hp.get(key)
        if isinstance(value, str):
            kind, _, initial = value.partition("_")
            if kind != "lin":
                raise ValueError(f"{key}: unsupported zoo schedule {value!r}")
            hp[key] = ZooLinear(float(initial), budget, horizon)
    if isinstance(hp.get("policy_kwargs"), str):
        hp["policy_kwargs"] = eval(hp["policy_kwargs"], {"__builtins__": {}},  # zoo convention
                                   {"dict": dict, "nn": nn})
    return hp, run


def _algo(peer: str) -> type:
    if peer == "ppo":
        from stable_baselines3 import PPO
        return PPO
    if peer == "dqn":
        from stable_baselines3 import DQN
        return DQN
    if peer == "recurrentppo":
        from sb3_contrib import RecurrentPPO
        return RecurrentPPO
    raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")


def _make_vec(env_id: str, n: int, seed: int, normalize: Any, gamma: float, eval_env: bool):
    """``n`` Monitor-wrapped copies, in VecNormalize when the zoo normalizes (frozen for eval)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    import neuralalchemy.tasks  # noqa: F401  registers MaskedCartPole-v1 & co.

    env = make_vec_env(env_id, n_envs=n, seed=seed)
    if not normalize:
        return env
    kwargs = dict(normalize) if isinstance(normalize, dict) else {}
    kwargs["gamma"] = gamma
    if eval_env:
        kwargs.update(training=False, norm_reward=False)
    return VecNormalize(env, **kwargs)


def train_peer(peer: str, env_id: str, seed: int, budget: int, eval_every: int,
               episodes: int = 20, final_episodes: int = 100,
               log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train one peer on one env; evaluate as ours does. Returns hyperparameters and records.

    Evaluation: after the update that brings the run to (or past) each multiple of
    ``eval_every`` env steps (the start of the next rollout), ``episodes`` deterministic episodes
    on separate envs seeded ``EVAL_SEED + i``; a final one of ``final_episodes`` after training.
    Each record: ``env_steps``, ``mean``, ``std``, ``episodes``, ``wall_s`` (training time so
    far, evaluation included, as ours).
    """
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    torch.set_num_threads(1)
    entry = zoo_entry(peer, env_id)
    if entry is None:
        raise ValueError(f"{peer} has no zoo hyperparameters for {env_id}")
    zoo_id, hp = entry
    kwargs, run = model_kwargs(hp, budget)
    gamma = float(kwargs.get("gamma", 0.99))
    env = _make_vec(env_id, run["n_envs"], seed, run["normalize"], gamma, False)
    evals = {n: _make_vec(env_id, n, EVAL_SEED, run["normalize"], gamma, True)
             for n in {episodes, final_episodes}}
    algo = _algo(peer)
    model = algo(run["policy"], env, seed=seed, device="cpu", verbose=0, **kwargs)
    if peer == "dqn":  # exploration over the zoo's horizon, not the (shorter) budget
        model.exploration_schedule = ZooExploration(
            model.exploration_initial_eps, model.exploration_final_eps,
            model.exploration_fraction, budget, run["horizon"])
    records: list[dict[str, Any]] = []
    start = time.perf_counter()

    def evaluate(n: int) -> None:
        eval_env = evals[n]
        if run["normalize"]:
            sync_envs_normalization(env, eval_env)
        eval_env.seed(EVAL_SEED)  # applied at evaluate_policy's reset: the same episodes
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=n, deterministic=True,
                                     return_episode_rewards=True)
        ret = np.asarray(returns, dtype=np.float64)
        rec = {"kind": "eval", "env_steps": int(model.num_timesteps), "mean": float(ret.mean()),
               "std": float(ret.std()), "episodes": n,
               "wall_s": round(time.perf_counter() - start, 3)}
        records.append(rec)
        if log is not None:
            log(rec)

    class Evaluator(BaseCallback):
        next_eval = eval_every

        def _on_rollout_start(self) -> None:
            if self.num_timesteps >= self.next_eval:
                evaluate(episodes)
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += eval_every

        def _on_step(self) -> bool:
            return True

    try:
        model.learn(total_timesteps=budget, callback=Evaluator())
        evaluate(final_episodes)
    finally:
        env.close()
        for e in evals.values():
            e.close()
    shown = {k: v for k, v in hp.items() if k != "n_timesteps"}
    return {"zoo_env": zoo_id, "hyperparameters": shown, "zoo_n_timesteps": hp["n_timesteps"],
            "records": records, "wall_s": round(time.perf_counter() - start, 2)}
