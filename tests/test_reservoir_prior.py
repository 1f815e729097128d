"""The hyperparameter part of the meta-prior: coordinates, evidence, the SVI fit, and what
meta-training does with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralalchemy.config import ReservoirConfig
from neuralalchemy.meta.reservoir_prior import (
    HYPER,
    HYPER_NAMES,
    ReservoirPrior,
    candidate_config,
    candidates,
    evidence_at,
    fit_reservoir_prior,
    from_unconstrained,
    log_evidence,
    to_unconstrained,
)


@settings(max_examples=60, deadline=None)
@given(sr=st.floats(0.01, 50.0), gain=st.floats(0.01, 50.0), du=st.floats(0.02, 0.98),
       dv=st.floats(0.02, 0.98), bias=st.floats(-5.0, 5.0))
def test_coordinates_round_trip(sr, gain, du, dv, bias):
    res = ReservoirConfig(spectral_radius=sr, input_scale=gain, du=du, dv=dv, bias=bias)
    back = from_unconstrained(to_unconstrained(res))
    for name, value in zip(HYPER_NAMES, (sr, gain, du, dv, bias)):
        assert back[name] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_candidates_start_at_the_configured_reservoir_and_stay_in_the_box():
    res = ReservoirConfig()
    cand = candidates(res, 16, seed=3)
    assert cand.shape == (16, len(HYPER))
    assert np.allclose(cand[0], to_unconstrained(res))
    width = np.array([w for _, _, w in HYPER])
    assert np.all(np.abs(cand - cand[0]) <= width + 1e-12)
    assert len({tuple(c) for c in cand}) == 16
    cfg = candidate_config(res, cand[5])
    assert cfg.seed == res.seed and cfg.size == res.size
    assert 0 < cfg.du < 1 and 0 < cfg.dv < 1 and cfg.spectral_radius > 0


def test_evidence_matches_the_gaussian_marginal_and_is_maximised():
    """``evidence_at`` is ``log N(y; 0, β⁻¹I + α⁻¹XXᵀ)``; ``log_evidence`` sits at its maximum
    over (α, β)."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    y = x @ rng.standard_normal(5) + 0.3 * rng.standard_normal(40)
    for alpha, beta in ((0.5, 4.0), (2.0, 10.0)):
        cov = np.eye(40) / beta + x @ x.T / alpha
        direct = multivariate_normal(np.zeros(40), cov).logpdf(y)
        assert evidence_at(x, y, alpha, beta) == pytest.approx(direct, rel=1e-9)
    best = log_evidence(x, y)
    grid = [evidence_at(x, y, a, b) for a in np.geomspace(0.05, 20, 25)
            for b in np.geomspace(0.5, 100, 25)]
    assert best >= max(grid) - 1e-6
    assert best - max(grid) < 0.5


def test_evidence_prefers_features_that_predict_the_target():
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((300, 4))
    y = signal @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.2 * rng.standard_normal(300)
    noise = rng.standard_normal((300, 4))
    assert log_evidence(signal, y) > log_evidence(noise, y) + 100


def test_svi_recovers_a_known_hyperparameter_hierarchy():
    """Tasks draw their hyperparameters ``u_t ~ N(m, s²)``; each task's evidence peaks sharply at
    its own ``u_t``. SVI must recover ``m`` and ``s`` from the evidence tables alone."""
    rng = np.random.default_rng(0)
    axis = np.linspace(-1.5, 1.5, 21)
    cand = np.array([[a, b] for a in axis for b in axis])
    m_true, s_true = np.array([0.3, -0.4]), np.array([0.3, 0.5])
    u = m_true + s_true * rng.standard_normal((50, 2))
    evidence = -((cand[None] - u[:, None]) ** 2).sum(-1) / (2 * 0.05 ** 2)
    prior = fit_reservoir_prior(evidence, cand, np.zeros(2), np.full(2, 1.5), steps=1500,
                                names=["a", "b"])
    assert np.abs(prior.m_loc - m_true).max() < 0.2, prior.m_loc
    assert np.all((prior.s > 0.6 * s_true) & (prior.s < 1.5 * s_true)), prior.s
    # the chosen candidate is the grid point nearest the fitted mean
    assert np.abs(cand[prior.chosen] - prior.m_loc).max() <= (axis[1] - axis[0]) / 2 + 1e-9
    # each task's posterior mode lies next to its own hyperparameters (the prior may tip a
    # near-tie between neighbouring grid points)
    modes = cand[np.argmax(prior.task_posteriors(), 1)]
    assert np.abs(modes - np.clip(u, -1.5, 1.5)).max() <= 1.5 * (axis[1] - axis[0])


def test_reservoir_prior_round_trips_through_extras():
    rng = np.random.default_rng(2)
    prior = ReservoirPrior(list(HYPER_NAMES), rng.standard_normal((6, 5)),
                           rng.standard_normal((3, 6)), rng.standard_normal(5),
                           np.abs(rng.standard_normal(5)), np.abs(rng.standard_normal(5)),
                           rng.standard_normal(10), 4)
    back = ReservoirPrior.from_extras(prior.to_extras())
    assert back is not None and back.names == prior.names and back.chosen == 4
    for k in ("candidates", "evidence", "m_loc", "m_scale", "s", "elbo"):
        assert np.array_equal(getattr(back, k), getattr(prior, k))
    assert ReservoirPrior.from_extras({}) is None
    assert math.isclose(float(back.predictive().sum()), 1.0)


def test_meta_train_runs_the_family_reservoir_at_the_prior_mode(tmp_path):
    """A small meta-training scores 6 candidates on 3 tasks; the agent's network is the chosen
    candidate's, and the prior is stored with the checkpoint."""
    from neuralalchemy.checkpoint import load_checkpoint
    from neuralalchemy.config import load_config
    from neuralalchemy.meta.core import MetaPrior, defaults_for
    from neuralalchemy.meta.metatrain import meta_train
    from neuralalchemy.network import build_network

    cfg = load_config(None, overrides=[
        "meta.train_tasks=3", "meta.task_steps=500", "meta.reservoir_candidates=6",
        "meta.hyper_episodes=6", "meta.svi_steps=200", "meta.norm_episodes=2",
        "meta.eval_episodes=2", f"out={tmp_path}"], base=defaults_for(None))
    result = meta_train(cfg, progress=False)
    ckpt = load_checkpoint(result.run_dir / "checkpoint.npz")
    stored = MetaPrior.from_checkpoint(ckpt).reservoir
    assert stored is not None and stored.evidence.shape == (3, 6)
    values = stored.values()
    for name, value in values.items():
        assert getattr(ckpt.config.reservoir, name) == pytest.approx(value)
    chosen = candidate_config(cfg.reservoir, stored.candidates[stored.chosen])
    expected = build_network(chosen, ckpt.network.w_in.shape[1], False)
    assert np.array_equal(np.asarray(expected.w_in), np.asarray(ckpt.network.w_in))
    summary = result.summary["reservoir"]
    assert summary["chosen"] == stored.chosen and len(summary["task_choices"]) == 3
    # tasks whose evidence differs across candidates: the scores are not all alike
    assert np.ptp(stored.evidence, axis=1).min() > 1.0
    # adaptation scores candidates on the agent's (chosen) reservoir: the same networks, so the
    # training tasks' episodes give back the stored evidence exactly
    from neuralalchemy.meta.adapt import adapt
    from neuralalchemy.meta.core import agent_from_checkpoint
    from neuralalchemy.meta.metatrain import score_candidates

    agent = agent_from_checkpoint(ckpt)
    prior = MetaPrior.from_checkpoint(ckpt)
    tasks = prior.info["train_tasks"]
    seed = cfg.training.seed
    again, _ = score_candidates(agent, stored.candidates, tasks, 6,
                                [seed + 104_729 * (i + 1) for i in range(3)], seed)
    np.testing.assert_allclose(again, stored.evidence, rtol=1e-9)
    _, s = adapt(agent, prior, tasks[0], 1, 2, 0, tmp_path)
    rp = s["reservoir_posterior"]
    assert len(rp["posterior"]) == 6 and math.isclose(sum(rp["posterior"]), 1.0, abs_tol=1e-5)
    assert rp["chosen"] == stored.chosen
    assert rp["p_chosen"] == pytest.approx(rp["posterior"][stored.chosen], abs=1e-6)
    assert rp["p_mode"] == max(rp["posterior"]) == pytest.approx(rp["posterior"][rp["mode"]])
