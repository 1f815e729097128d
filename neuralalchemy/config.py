"""One typed configuration schema, read from YAML or INI, overridden by environment and ``--set``.

Precedence, lowest first: built-in defaults, the config file, environment variables, ``--set``.

* A YAML file holds one mapping per section (``reservoir: {size: 500}``); an INI file holds the
  same sections (``[reservoir]`` then ``size = 500``). Top-level keys (``env``) sit in an INI
  ``[general]`` section.
* ``RESERVOIR_SIZE=500`` (or ``ALCHEMY_RESERVOIR_SIZE=500``) sets ``reservoir.size``; a top-level
  key is set with the ``ALCHEMY_`` prefix only (``ALCHEMY_ENV=Acrobot-v1``).
* ``--set reservoir.size=500`` overrides everything.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A configuration value, key or file is invalid; the message names it and the fix."""


def _f(default: Any, help: str, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, parse: str | None = None) -> Any:
    """A schema field with its documentation, an inclusive (or left-open) range and, for a list
    that is not a list of ranges, the name of its parser in ``_LIST_PARSERS``."""
    meta = {"help": help, "min": lo, "max": hi, "min_open": lo_open, "parse": parse}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ReservoirConfig:
    """The fixed random recurrent network of LIF neurons."""

    size: int = _f(256, "number of LIF neurons", 1, 1_000_000)
    topology: Literal["random", "delay_line"] = _f(
        "random", "'random': sparse random E/I recurrence; 'delay_line': chains of neurons that "
        "relay each input step's spike count one step further per neuron (a spiking delay-line "
        "reservoir; neuralalchemy.network.delay_line_network)")
    connectivity: float = _f(0.1, "probability of each recurrent synapse", 0.0, 1.0, True)
    spectral_radius: float = _f(
        0.9, "spectral radius of the recurrent weights, in units of the threshold", 0.0, 100.0)
    excitatory_fraction: float = _f(0.8, "fraction of excitatory neurons (Dale's law)", 0.0, 1.0)
    inhibitory_gain: float = _f(
        4.0, "magnitude of inhibitory relative to excitatory weights", 0.0, 100.0)
    input_scale: float = _f(
        0.8, "peak input current per active input channel, in units of the threshold", 0.0, 100.0)
    input_connectivity: float = _f(
        0.25, "probability that a neuron listens to an input channel", 0.0, 1.0, True)
    du: float = _f(0.5, "current decay per timestep (Lava du)", 0.0, 1.0)
    dv: float = _f(0.25, "voltage decay per timestep (Lava dv)", 0.0, 1.0)
    vth: float = _f(1.0, "spike threshold", 0.0, 1e6, True)
    bias: float = _f(0.0, "constant bias current, in units of the threshold", -10.0, 10.0)
    refractory: int = _f(2, "refractory period in timesteps after a spike", 0, 63)
    steps_per_obs: int = _f(5, "simulation timesteps per environment step (K)", 1, 1000)
    precision: Literal["fixed", "float"] = _f(
        "fixed", "'fixed': Loihi fixed-point dynamics in training (what runs on chip); 'float'")
    seed: int = _f(0, "seed that draws every weight of the network", 0, 2**31 - 1)
    layers: int = _f(1, "hierarchical stack depth: layer k feeds layer k+1 (each of `size`)", 1, 16)
    interlayer_connectivity: float = _f(
        0.1, "probability of a feedforward synapse from an excitatory neuron of layer k to k+1",
        0.0, 1.0)
    interlayer_scale: float = _f(
        1.0, "feedforward weight magnitude between layers, in units of the threshold", 0.0, 100.0)
    feedback_scale: float = _f(
        0.0, "feedback weight magnitude from layer k+1 to k (0: no feedback)", 0.0, 100.0)
    delay_max: int = _f(
        0, "recurrent synapses get an extra delay drawn from 0..delay_max timesteps", 0, 62)
    lateral_inhibition: float = _f(
        0.0, "extra inhibition from each inhibitory neuron onto its ring neighbours", 0.0, 100.0)
    lateral_radius: int = _f(2, "ring distance reached by lateral inhibition", 1, 1000)
    memory_units: int = _f(
        0, "bistable memory units (flip-flops) appended after the layers: unit j holds the sign "
        "of its last cue, + on input channel 2j or - on 2j+1 (0: none)", 0, 4096)
    memory_size: int = _f(
        12, "neurons per memory group (a unit has four: + and - clusters, two reset gates)", 2,
        1024)
    memory_gain: float = _f(
        6.5, "recurrent excitation a memory neuron receives when its whole cluster spikes, in "
        "units of the threshold", 0.0, 1000.0)
    memory_inhibition: float = _f(
        5.0, "inhibition a memory neuron receives when its reset gate spikes, in units of the "
        "threshold", 0.0, 1000.0)
    memory_input_scale: float = _f(
        0.8, "input weight of a cue channel onto its memory cluster and the partner's reset "
        "gate, in units of the threshold", 0.0, 100.0)
    memory_bias: float = _f(
        -0.6, "bias of the memory neurons, in units of the threshold (negative: weak input "
        "cannot set a unit)", -10.0, 10.0)


@dataclass(frozen=True)
class EncoderConfig:
    """Population coding: Gaussian receptive fields tiling each observation dimension."""

    kind: Literal["population", "current", "poisson"] = _f(
        "population", "'population': graded Gaussian receptive fields; 'current': each dimension "
        "as two graded channels (above / below the range centre); 'poisson': receptive-field "
        "values as binary spike probabilities per timestep")
    neurons_per_dim: int = _f(10, "receptive fields per observation dimension", 2, 256)
    width: float = _f(1.0, "receptive-field sigma in units of the centre spacing", 0.05, 20.0)
    calibration_episodes: int = _f(
        20, "random-policy episodes used to find each dimension's range", 1, 10_000)
    ranges: list = _f([], "explicit [low, high] per dimension; empty = calibrate")
    changes: bool = _f(
        False, "also code each dimension's change since the previous environment step (transient "
        "channels: the encoder keeps one observation; zero change on an episode's first step)")
    change_ranges: list = _f(
        [], "explicit [low, high] per dimension of the changes; empty = calibrate (changes)")


@dataclass(frozen=True)
class ReadoutConfig:
    """Linear readout on the reservoir's activity in each environment step."""

    features: Literal["counts", "trace"] = _f(
        "counts", "spike counts per step, or counts filtered across steps")
    trace_decay: float = _f(0.5, "trace = decay * trace + counts (features = trace)", 0.0, 1.0)


@dataclass(frozen=True)
class TrainingConfig:
    """The readout learner: ARS (Mania et al. 2018), PPO (Schulman et al. 2017), BLQ (Bayesian
    linear Q-learning with Thompson sampling) or MPC (a learned model plans, the readout imitates
    the plans by DAgger)."""

    algorithm: Literal["ars", "ppo", "blq", "mpc"] = _f(
        "ars", "readout learner: 'ars' random search, 'ppo' actor-critic, 'blq' Bayesian linear "
        "Q, 'mpc' model-based (planning on a learned model, distilled into the readout)")
    steps: int = _f(2_000_000, "budget of environment steps", 1, 10**10)
    directions: int = _f(16, "random directions per update (ars)", 1, 4096)
    top_directions: int = _f(8, "best directions used in the update (ars)", 1, 4096)
    step_size: float = _f(0.05, "update step size (ars)", 0.0, 100.0, True)
    eval_every: int = _f(5, "evaluate the current readout every N updates", 1, 10_000)
    eval_episodes: int = _f(100, "episodes in the final evaluation", 1, 100_000)
    target_return: float | None = _f(
        None, "stop once the evaluation mean reaches this (None: the env's threshold)")
    seed: int = _f(0, "seed of the learner and the environments", 0, 2**31 - 1)
    num_envs: int = _f(
        8, "environments stepping together through one batched reservoir (ppo, blq)", 1, 4096)
    gamma: float = _f(0.99, "discount factor (ppo, blq, reward shaping)", 0.0, 1.0)
    rollout_steps: int = _f(
        32, "steps per environment in each rollout before an update (ppo)", 1, 100_000)
    gae_lambda: float = _f(0.95, "GAE lambda (ppo)", 0.0, 1.0)
    epochs: int = _f(10, "passes over each rollout (ppo)", 1, 1000)
    minibatches: int = _f(4, "minibatches per pass (ppo)", 1, 4096)
    clip: float = _f(0.2, "PPO ratio clip epsilon (ppo)", 0.0, 10.0, True)
    entropy_coef: float = _f(0.0, "entropy bonus coefficient (ppo)", 0.0, 10.0)
    value_coef: float = _f(0.5, "value-loss coefficient (ppo)", 0.0, 100.0)
    max_grad_norm: float = _f(0.5, "gradient-norm clip; 0 disables (ppo)", 0.0, 1e6)
    normalize_rewards: bool = _f(
        False, "ppo: divide rewards by a running std of each environment's discounted return "
        "(reward scaling, Engstrom et al. 2020; SB3 VecNormalize's norm_reward), so that the "
        "critic fits values of unit scale whatever the reward's units")
    reward_clip: float = _f(
        10.0, "ppo with normalize_rewards: bound on a scaled reward (SB3 VecNormalize's "
        "clip_reward); 0 disables it, which a sparse payment at the episode's end needs", 0.0, 1e9)
    init_log_std: float = _f(
        -0.5, "initial log std of the Gaussian policy before tanh (ppo, Box actions)", -10.0, 5.0)
    optimizer: Literal["sgd", "momentum", "rmsprop", "adam"] = _f(
        "adam", "gradient optimizer (torch.optim): 'sgd', 'momentum' (SGD with momentum), "
        "'rmsprop', 'adam'")
    lr: float = _f(3e-3, "learning rate (ppo)", 0.0, 10.0, True)
    momentum: float = _f(0.9, "momentum of the 'momentum' and 'rmsprop' optimizers", 0.0, 1.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = _f(
        "constant", "learning-rate schedule over lr_horizon env steps (ppo)")
    lr_horizon: int = _f(
        0, "env steps over which the schedule decays (0: training.steps)", 0, 10**10)
    l1: float = _f(0.0, "L1 penalty on the readout weights (ppo)", 0.0, 100.0)
    l2: float = _f(
        0.0, "L2 penalty on the readout weights (ppo; blq: added to the prior precision)",
        0.0, 1e6)
    feature_noise: float = _f(
        0.0, "std of Gaussian noise added to the normalised features in updates (ppo, blq)",
        0.0, 100.0)
    prior_precision: float = _f(
        1.0, "precision of the Gaussian prior on each Q readout weight (blq)", 0.0, 1e9, True)
    noise_var: float | None = _f(
        None, "noise variance of the Q regression (blq; None: estimated from the residuals)",
        0.0, 1e9, True)
    replay_size: int = _f(20_000, "transitions kept for the Q refits (blq)", 1, 10**8)
    refit_every: int = _f(
        100, "env steps (all environments together) between posterior refits (blq)", 1, 10**7)
    fitted_q_iterations: int = _f(
        10, "fitted-Q sweeps over the replay in each refit (blq)", 1, 1000)
    model_ensemble: int = _f(5, "mpc: MLPs in the learned dynamics ensemble", 1, 64)
    model_hidden: int = _f(128, "mpc: units in each of the model's two hidden layers", 1, 4096)
    model_every: int = _f(
        1_000, "mpc: env steps (all environments together) between model refits", 1, 10**8)
    model_updates: int = _f(
        4_000, "mpc: most Adam steps per model refit (20 passes over the data, at least 500)",
        1, 10**7)
    random_steps: int = _f(
        1_000, "mpc: env steps of uniformly random actions before the first model", 1, 10**8)
    plan_horizon: int = _f(15, "mpc: steps each planned action sequence looks ahead", 1, 1000)
    plan_candidates: int = _f(
        200, "mpc: action sequences per environment and CEM iteration (a multiple of "
        "model_ensemble)", 2, 10**6)
    plan_iterations: int = _f(3, "mpc: cross-entropy-method refits per plan", 1, 100)
    dagger_beta: float = _f(
        0.5, "mpc: probability that an env step executes the planner's action rather than the "
        "readout's (DAgger's mixture; 1: the planner always acts)", 0.0, 1.0)
    ridge: float = _f(
        1.0, "mpc: ridge penalty of the readout's regression onto the plans", 0.0, 1e9)
    init: str | None = _f(
        None, "transfer learning: a run folder (or checkpoint) whose network, encoder and "
        "readout start this run (`alchemy train --init RUN`)")
    init_freeze: Literal["none", "normalisation"] = _f(
        "none", "with init: 'normalisation' keeps the source's feature normalisation fixed "
        "(only the readout is fine-tuned); 'none' fine-tunes both (blq always keeps it)")


@dataclass(frozen=True)
class ExplorationConfig:
    """How the learner explores, and extra reward signals for sparse tasks."""

    noise: float = _f(0.05, "std of the parameter perturbations (ARS nu)", 0.0, 100.0, True)
    thompson: bool = _f(
        True, "blq: act greedily on readouts sampled from the posterior (off: epsilon-greedy)")
    thompson_every: int = _f(
        0, "blq: env steps between posterior samples (0: one sample per episode)", 0, 10**7)
    thompson_scale: float = _f(
        1.0, "blq: multiplier of the posterior std when sampling", 0.0, 100.0)
    epsilon: float = _f(0.05, "blq without thompson: probability of a random action", 0.0, 1.0)
    intrinsic: Literal["none", "rnd", "counts"] = _f(
        "none", "novelty bonus on reservoir states: 'rnd' (random network distillation on the "
        "features) or 'counts' (1/sqrt(n) over SimHash codes of the features)")
    intrinsic_coef: float = _f(0.1, "scale of the novelty bonus added to the reward", 0.0, 1e6)
    hash_bits: int = _f(16, "SimHash bits of the 'counts' bonus", 1, 62)
    shaping: Literal["none", "cartpole", "mountaincar", "acrobot"] = _f(
        "none", "potential-based shaping F = gamma*phi(s') - phi(s) with the named potential "
        "(leaves the optimal policy unchanged)")
    shaping_scale: float = _f(1.0, "multiplier of the shaping potential phi", 0.0, 1e6)


@dataclass(frozen=True)
class MetaConfig:
    """Bayesian meta-learning across a task family (``alchemy meta-train``, ``adapt``,
    ``continual``): per-task Bayesian linear Q readouts under a hierarchical prior fitted by SVI."""

    train_tasks: int = _f(8, "training tasks drawn from the family's 'train' split", 2, 10_000)
    heldout_tasks: int = _f(
        4, "held-out tasks per split ('within', 'extrapolation') in adaptation benchmarks", 1,
        10_000)
    task_steps: int = _f(
        20_000, "environment steps of Bayesian linear Q learning on each training task", 100,
        10**9)
    norm_episodes: int = _f(
        16, "episodes per training task (random readouts) that fix the feature normalisation",
        1, 100_000)
    svi_steps: int = _f(1500, "SVI steps fitting the hierarchical prior", 1, 10**7)
    prior_rank: int = _f(
        3, "rank k of the directions along which task readouts differ (0: diagonal prior)", 0,
        64)
    svi_lr: float = _f(0.02, "Adam learning rate of SVI", 0.0, 10.0, True)
    tau_loc: float = _f(
        0.3, "hyperprior median of the across-task std of a readout weight", 0.0, 1e6, True)
    mu_scale: float = _f(10.0, "hyperprior std of the prior mean of a readout weight", 0.0, 1e6,
                         True)
    reservoir_candidates: int = _f(
        0, "reservoir hyperparameter vectors (weight scale, input gain, decays, bias) scored on "
        "every training task for the hyperparameter prior, e.g. 16; the first is the configured "
        "one, and the family runs the prior's mode (0 or 1: keep the configured reservoir, no "
        "hyperparameter prior)", 0, 4096)
    hyper_episodes: int = _f(
        32, "random-policy episodes per training task that score the reservoir candidates", 1,
        100_000)
    mixture: bool = _f(
        True, "a family with a discrete task parameter (CartPoleFlip's direction) gets one prior "
        "mean per value, sharing one covariance; adaptation infers a new task's value from its "
        "episode returns (off: one Gaussian prior for all tasks)")
    centre: Literal["best", "svi", "pooled"] = _f(
        "best", "each prior component's mean, the readout a new task starts from: 'svi' the "
        "hierarchical model's mean, 'pooled' a ridge readout on the data of the component's "
        "training tasks pooled, 'best' whichever earns the higher greedy return on those tasks "
        "(meta.eval_episodes each)")
    adapt_select: bool = _f(
        True, "`alchemy adapt`: the adapted readout is the posterior mean or posterior draw that "
        "earned the highest episode return so far (off: the posterior mean)")
    adapt_episodes: int = _f(10, "episodes of experience on the new task in `alchemy adapt`", 1,
                             100_000)
    eval_episodes: int = _f(
        10, "greedy evaluation episodes after each adaptation stage", 1, 100_000)
    continual_tasks: int = _f(5, "tasks in the sequence of `alchemy continual`", 2, 1000)
    continual_steps: int = _f(
        10_000, "environment steps on each task of the continual sequence", 100, 10**9)
    posterior_prior: bool = _f(
        True, "continual: the posterior after each task is the prior of the next (VCL)")
    prior_strength: float = _f(
        1.0, "continual with posterior_prior: the weight of the earlier tasks' evidence in the "
        "next task's prior, N(μ, P₀ + β·(P − P₀)); 1 is exact posterior-as-prior, smaller "
        "widens it (Bayesian forgetting), 0 keeps only the mean", 0.0, 1.0)
    replay: bool = _f(
        False, "continual: keep a replay buffer of earlier tasks' transitions in the refits")
    replay_per_task: int = _f(
        2000, "continual with replay: transitions kept from each finished task", 1, 10**7)
    heads: bool = _f(
        True, "continual: one readout per task, each starting from the hierarchical prior "
        "fitted (SVI) to the tasks before it (multi-head VCL); overrides posterior_prior and "
        "replay (false: one readout for every task, carried as they say)")


@dataclass(frozen=True)
class PlasticityConfig:
    """Unsupervised pre-adaptation of the reservoir with a local learning rule, before the readout
    is trained (``alchemy train --plasticity stdp``): the rule runs on the task's own input stream
    and the adapted weights become the network that is trained, compiled and deployed."""

    rule: Literal["none", "hebbian", "stdp"] = _f(
        "none", "'hebbian': dw = lr·x_pre·s_post (pre trace times post spike, normalised); "
        "'stdp': pair-based STDP with pre/post traces; 'none': the reservoir stays as drawn")
    target: Literal["recurrent", "input"] = _f(
        "recurrent", "which synapses adapt: the excitatory recurrent ones or the input ones")
    episodes: int = _f(
        10, "random-policy episodes (RL) or input sequences (supervised) the rule runs on",
        1, 100_000)
    lr: float = _f(0.05, "learning rate of the rule, in units of the largest initial weight",
                   0.0, 100.0)
    a_plus: float = _f(1.0, "stdp: potentiation amplitude (pre before post)", 0.0, 100.0)
    a_minus: float = _f(1.0, "stdp: depression amplitude (post before pre)", 0.0, 100.0)
    tau_plus: float = _f(8.0, "stdp: pre-synaptic trace time constant in timesteps", 0.0, 1e4,
                         True)
    tau_minus: float = _f(8.0, "stdp: post-synaptic trace time constant in timesteps", 0.0,
                          1e4, True)
    w_max: float = _f(
        2.0, "upper bound of an adapted weight, in units of its initial largest magnitude",
        0.0, 1e3, True)
    epoch: int = _f(5, "timesteps between weight updates (Lava's learning epoch t_epoch)", 1,
                    10_000)


@dataclass(frozen=True)
class TaskConfig:
    """Supervised reservoir tasks (``alchemy train --task narma10``): generated series or a
    dataset a package ships, a spike encoding, and a linear (regression) or softmax
    (classification) readout, trained in closed form or by surrogate-gradient backprop."""

    name: Literal["none", "narma10", "mackey_glass", "memory_capacity", "digits",
                  "delayed_recall"] = _f(
        "none", "the supervised task; 'none' trains the RL agent on `env`")
    train_length: int = _f(4000, "training timesteps of a series task", 10, 10**8)
    test_length: int = _f(1000, "test timesteps of a series task", 10, 10**8)
    washout: int = _f(100, "leading timesteps whose states are not used by the readout", 0,
                      10**7)
    ridge: float = _f(
        1e-4, "ridge penalty λ of the readout on standardised features: minimises the mean "
        "squared error (softmax: the mean cross-entropy) + λ·|w|²", 0.0, 1e9)
    method: Literal["ridge", "backprop"] = _f(
        "ridge", "'ridge': closed-form readout on fixed reservoir states; 'backprop': "
        "surrogate-gradient training through the spiking network (optimizer, lr, schedule, l1, "
        "l2 from the training section)")
    epochs: int = _f(30, "backprop: passes over the training data", 1, 100_000)
    batch_size: int = _f(16, "backprop: sequences per gradient step", 1, 100_000)
    sequence_length: int = _f(200, "backprop: timesteps per training sequence (truncated BPTT)",
                              1, 10**6)
    train_input: bool = _f(True, "backprop: also train the input weights")
    train_recurrent: bool = _f(False, "backprop: also train the recurrent weights")
    attention: bool = _f(
        False, "learn one gain per input channel (attention); it compiles into the input "
        "weights")
    dropout: float = _f(0.0, "backprop: dropout probability on the reservoir features", 0.0,
                        0.99)
    input_noise: float = _f(0.0, "backprop: std of Gaussian noise added to the inputs", 0.0,
                            100.0)
    weight_noise: float = _f(
        0.0, "backprop: std of multiplicative Gaussian noise on the trained weights in each "
        "step", 0.0, 100.0)
    surrogate_slope: float = _f(
        5.0, "backprop: slope of the fast-sigmoid surrogate of the spike derivative", 0.0,
        1e4, True)
    delay: int = _f(30, "delayed_recall: steps between the cue and the recall", 1, 10**6)
    horizon: int = _f(1, "mackey_glass: predict x(t + horizon) from x(0..t)", 1, 10_000)
    max_delay: int = _f(
        0, "memory_capacity: delays k = 1..max_delay summed (0: twice the neuron count)", 0,
        100_000)
    seed: int = _f(0, "seed of the generated data (inputs, cue times, the digits split)", 0,
                   2**31 - 1)
    lanes: int = _f(
        8, "a series runs as this many pieces side by side, each warmed up on the `washout` "
        "inputs before it (1: one continuous run)", 1, 4096)
    select_ridge: bool = _f(
        False, "pick the ridge penalty from 1e-8..1e2 (decades) on the last fifth of the "
        "training rows, then refit on all of them")


@dataclass(frozen=True)
class CurriculumConfig:
    """A schedule of tasks from easy to hard. Each stage is an ordinary run that starts from the
    previous stage's agent (transfer: its network, encoder and readout) and trains until its
    target or its step budget; the last stage's run is the one `alchemy compile` picks."""

    stages: list = _f(
        [], "stages in order, each {env: ENV_SPEC, steps: N} with an optional target_return; "
        "empty: no curriculum", parse="stages")


@dataclass(frozen=True)
class Config:
    """Everything one run needs; see each section's fields."""

    env: str = _f("CartPole-v1", "Gymnasium environment id")
    out: str = _f("experiments", "folder that holds runs and artifacts")
    reservoir: ReservoirConfig = field(default_factory=ReservoirConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Build and validate from a nested mapping (unknown keys are errors)."""
        return _build(cls, data, "")


# ---------------------------------------------------------------- type checking
def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(tp: Any, value: Any, key: str) -> Any:
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        if typing.get_origin(tp) is Literal and "none" in typing.get_args(tp):
            return "none"  # `--set exploration.intrinsic=none` reads as null
        raise ConfigError(f"{key}: a value is required (got null)")
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        return _number(tp, value, key)
    if tp is str:
        if isinstance(value, str) and value:
            return value
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    if tp is list:
        return _ranges(value, key)
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - schema bug


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _number(tp: type, value: Any, key: str) -> int | float:
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "1e9" and "3e-4" (no dot) as strings
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{key}: expected {kind}, got {value!r}")
    if tp is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if value != value:
        raise ConfigError(f"{key}: expected a number, got NaN")
    return float(value)


def _ranges(value: Any, key: str) -> list[list[float]]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of [low, high] pairs, got {value!r}")
    out = []
    for pair in value:
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair)
        if not ok or not float(pair[0]) < float(pair[1]):
            raise ConfigError(
                f"{key}: each entry must be [low, high] with low < high, got {pair!r}")
        out.append([float(pair[0]), float(pair[1])])
    return out


_STAGE_KEYS = {"env": str, "steps": int, "target_return": float}


def _stages(value: Any, key: str) -> list[dict[str, Any]]:
    """Curriculum stages: a list of ``{env, steps[, target_return]}`` mappings."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list of {{env: ENV_SPEC, steps: N}} stages, "
                          f"got {value!r}")
    out = []
    for i, stage in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(stage, Mapping):
            raise ConfigError(f"{where}: expected a mapping {{env: ENV_SPEC, steps: N}}, "
                              f"got {stage!r}")
        unknown = sorted(set(stage) - set(_STAGE_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; known keys here: "
                              f"{', '.join(_STAGE_KEYS)}")
        missing = [k for k in ("env", "steps") if k not in stage]
        if missing:
            raise ConfigError(f"{where}: {missing[0]} is missing; each stage needs env and steps")
        parsed = {k: _coerce(_STAGE_KEYS[k], v, f"{where}.{k}") for k, v in stage.items()}
        if parsed["steps"] < 1:
            raise ConfigError(f"{where}.steps: {parsed['steps']} is out of range: must be >= 1")
        out.append(parsed)
    return out


_LIST_PARSERS: dict[str, Any] = {"stages": _stages}


def _check_range(f: dataclasses.Field, value: Any, key: str) -> None:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if value is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if lo is not None and (value < lo or (f.metadata.get("min_open") and value == lo)):
        op = ">" if f.metadata.get("min_open") else ">="
        raise ConfigError(f"{key}: {value!r} is out of range: must be {op} {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}: {value!r} is out of range: must be <= {hi}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        name = prefix.rstrip(".") or "config"
        raise ConfigError(f"{name}: expected a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; known keys here: {', '.join(sorted(fields))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = prefix + name
        tp = hints[name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key + ".")
        elif fields[name].metadata.get("parse"):
            kwargs[name] = _LIST_PARSERS[fields[name].metadata["parse"]](value, key)
        else:
            kwargs[name] = _coerce(tp, value, key)
            _check_range(fields[name], kwargs[name], key)
    obj = cls(**kwargs)
    _cross_checks(obj, prefix)
    return obj


def _cross_checks(obj: Any, prefix: str) -> None:
    if isinstance(obj, TrainingConfig) and obj.top_directions > obj.directions:
        raise ConfigError(
            f"{prefix}top_directions: {obj.top_directions} exceeds {prefix}directions "
            f"({obj.directions}); lower it or raise directions")


# ---------------------------------------------------------------- sources
def _parse_scalar(text: str) -> Any:
    """Parse an INI / env / --set value with YAML's scalar rules ("500" -> 500, "none" -> None)."""
    if text.strip().lower() in ("none", "null", "~"):
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


# The shipped config ``alchemy train --env ID`` uses when no ``--config`` is given (CartPole-v1's,
# cartpole.yaml, is the built-in defaults).
SHIPPED_FOR_ENV = {
    "Acrobot-v1": "acrobot_mpc", "MountainCar-v0": "mountaincar",
    "Pendulum-v1": "pendulum", "MaskedCartPole-v1": "masked_cartpole",
    "MaskedPendulum-v1": "masked_pendulum", "SparseCartPole-v1": "sparse_cartpole",
}


def shipped_configs() -> dict[str, Path]:
    """The configs shipped with the package (the repository's ``configs/``), by name."""
    from importlib import resources

    try:
        root = Path(str(resources.files("neuralalchemy.configs")))
    except ModuleNotFoundError:
        raise ConfigError("the shipped configs are not installed (an install older than them): "
                          "re-run pip install -e . in the repository") from None
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def shipped_config(name: str) -> Path | None:
    """The shipped config called ``name`` (a bare name such as ``mountaincar``), if any: a
    path or a file name (``mountaincar.yaml``) never falls back to a shipped file."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        return None
    return shipped_configs().get(name)


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or INI (``.ini``/``.cfg``) file into a nested dict.

    A ``path`` that is not a file but names a shipped config (``mountaincar``) reads that one."""
    p = Path(path)
    if not p.is_file():
        shipped = shipped_config(str(path))
        if shipped is None:
            names = ", ".join(shipped_configs())
            raise ConfigError(f"config file {str(p)!r} not found; pass an existing --config "
                              f"path or a shipped config name ({names})")
        p = shipped
    text = p.read_text(encoding="utf-8", errors="replace")
    if p.suffix.lower() in (".ini", ".cfg"):
        return _read_ini(text, p.name)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p.name}: malformed YAML{where}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p.name}: expected a mapping of sections at the top level")
    return data


def _read_ini(text: str, name: str) -> dict[str, Any]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{name}: malformed INI ({first}); fix the syntax") from None
    out: dict[str, Any] = {}
    for section in parser.sections():
        values = {k: _parse_scalar(v) for k, v in parser.items(section)}
        if section.lower() in ("general", "main", "run"):
            out.update(values)
        else:
            out[section.lower()] = values
    return out


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(dotted key, value) for each environment variable that names a schema key."""
    found: list[tuple[str, Any]] = []
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(hints[f.name]):
            for sub in dataclasses.fields(hints[f.name]):
                plain = f"{f.name}_{sub.name}".upper()
                for var in (plain, "ALCHEMY_" + plain):
                    if var in environ:
                        found.append((f"{f.name}.{sub.name}", _parse_scalar(environ[var])))
        elif f"ALCHEMY_{f.name.upper()}" in environ:
            found.append((f.name, _parse_scalar(environ[f"ALCHEMY_{f.name.upper()}"])))
    return found


def parse_set(item: str) -> tuple[str, Any]:
    """Split one ``--set section.key=value``."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. reservoir.size=500")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: the key is empty; write section.key=value")
    return key, _parse_scalar(raw)


OTHER_SECTIONS = ("tune",)
"""Top-level file sections read by other modules (``tune``: :mod:`neuralalchemy.tune`); the
run configuration skips them in files (``--set`` and environment variables cannot reach them)."""


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                environ: Mapping[str, str] | None = None,
                base: Mapping[str, Any] | None = None) -> Config:
    """Resolve the configuration: defaults < ``base`` < file < environment < ``overrides``."""
    data: dict[str, Any] = {}
    for source in (base or {}), (read_file(path) if path else {}):
        for key, value in source.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
    for key in OTHER_SECTIONS:
        data.pop(key, None)
    for key, value in env_overrides(os.environ if environ is None else environ):
        _set_path(data, key, value)
    for item in overrides:
        _set_path(data, *parse_set(item))
    return Config.from_dict(data)


def describe() -> list[tuple[str, str, str]]:
    """(key, default, help) for every field: the reference table in the docs and ``--help``."""
    rows = []
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        tp = hints[f.name]
        subfields = dataclasses.fields(tp) if dataclasses.is_dataclass(tp) else []
        if not subfields:
            rows.append((f.name, repr(f.default), f.metadata.get("help", "")))
        for sub in subfields:
            factory: Any = sub.default_factory
            default = sub.default if sub.default is not dataclasses.MISSING else factory()
            rows.append((f"{f.name}.{sub.name}", repr(default), sub.metadata.get("help", "")))
    return rows


def reference_markdown() -> str:
    """``docs/configuration.md``: every key, its default and meaning (``make docs`` writes it)."""
    head = ("# Configuration reference\n\n"
            "Every key of the schema, its default and meaning (generated from "
            "`neuralalchemy/config.py`).\n"
            "Environment variable: `SECTION_KEY` (e.g. `RESERVOIR_SIZE`) or "
            "`ALCHEMY_SECTION_KEY`; top-level keys only as `ALCHEMY_KEY`.\n\n"
            "| key | default | meaning |\n|---|---|---|\n")
    return head + "".join(f"| `{k}` | `{d}` | {h} |\n" for k, d, h in describe())
