"""``alchemy report``: every figure of a training run, an HTML page with no external reference,
the recorded raster replays the greedy episode, runs of every kind render, and bad input is a
one-line error (exit 2)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from clihelp import alchemy, assert_one_line_error

from neuralalchemy.agent_io import act
from neuralalchemy.checkpoint import load_checkpoint, save_checkpoint
from neuralalchemy.cli import main
from neuralalchemy.report import Episode, blq_q_std, build_report, episode_features, prior_q_std

TRAIN_FIGURES = ("learning_curve.png", "raster.png", "rates.png", "readout.png",
                 "readout_hist.png")


def _run(tiny_artifact: Path) -> Path:
    return next((tiny_artifact.parents[1] / "runs").iterdir())


def _copy_run(tiny_artifact: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run in an experiments folder of its own (no artifact beside it)."""
    run = _run(tiny_artifact)
    return Path(shutil.copytree(run, tmp_path / "experiments" / "runs" / run.name))


def _links(page: str) -> list[str]:
    return re.findall(r"(?:src|href)\s*=\s*['\"]([^'\"]*)['\"]", page)


@pytest.fixture(scope="module")
def train_report(tiny_artifact, tmp_path_factory):
    """``alchemy report RUN --out OUT`` of the tiny training run: (run, out, stdout)."""
    import contextlib
    import io

    run = _run(tiny_artifact)
    out = tmp_path_factory.mktemp("report") / "rep"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", str(run), "--out", str(out)]) == 0
    return run, out, buf.getvalue()


def test_report_of_a_training_run(tiny_artifact, train_report):
    run, out, stdout = train_report
    assert f"report {out / 'index.html'}" in stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    cores = [p.name for p in out.glob("cores-*.png")]
    assert cores == [f"cores-{tiny_artifact.name}.png"]  # the artifact compiled from this run
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([*TRAIN_FIGURES, *cores])
    for name in pngs:  # linked by name and embedded
        assert f"href='{name}'" in page and f"alt='{name}'" in page
    assert page.count("src='data:image/png;base64,") == len(pngs)
    # offline: every src/href is a data URI, an anchor or a file of the report folder
    for link in _links(page):
        assert not re.match(r"^[a-z]+://|^//", link), link
        assert link.startswith(("data:image/png;base64,", "#")) or (out / link).is_file(), link
    assert "http" not in "".join(_links(page))
    # header: config, versions, seeds, git revision
    prov = json.loads((run / "provenance.json").read_text())
    assert "resolved config (config.yaml)" in page and "spectral_radius: " in page
    assert f"<td>numpy</td><td>{prov['versions']['numpy']}</td>" in page
    assert f"<td>{prov['git_revision']}</td>" in page and "reservoir 0, training 0" in page
    assert "not a Bayesian run (algorithm ars)" in page
    assert "% synaptic memory" in page and "% axons in" in page
    manifest = json.loads((out / "report.json").read_text())
    assert manifest["spikes"] > 0


def test_recorded_raster_replays_the_greedy_episode(train_report):
    """The report's raster has spikes in the shown window, and the readout features counted
    from it give back every action the closed loop took."""
    run, out, _ = train_report
    with np.load(out / "spikes.npz") as data:
        raster, actions = data["raster"], data["actions"]
    ckpt = load_checkpoint(run)
    assert raster.dtype == bool and raster.shape[1] == ckpt.network.size
    assert raster[:300].any()
    agent = ckpt.agent()
    features = episode_features(raster, agent.steps_per_obs, agent.readout.trace_decay)
    assert len(features) == len(actions) > 0
    np.testing.assert_array_equal(act(features, agent.readout), actions)


def test_run_without_metrics_still_renders(tiny_artifact, tmp_path, capsys):
    run = _copy_run(tiny_artifact, tmp_path)
    (run / "metrics.jsonl").unlink()
    (run / "summary.json").unlink()
    assert main(["report", "--root", str(tmp_path / "experiments")]) == 0  # newest run
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "no metrics" in page and "no summary.json" in page
    assert "no artifact compiled from this run" in page
    assert not (run / "report" / "learning_curve.png").exists()
    assert (run / "report" / "raster.png").is_file()
    # a run without a checkpoint (still training, say) renders too; the report is replaced
    (run / "checkpoint.npz").unlink()
    assert main(["report", str(run)]) == 0
    page = (run / "report" / "index.html").read_text(encoding="utf-8")
    assert "no checkpoint at" in page and not (run / "report" / "raster.png").exists()
    assert not list(run.glob(".report.*"))


def _prior_extras(ckpt, rank: int = 2) -> dict[str, np.ndarray]:
    from neuralalchemy.meta.core import MetaPrior

    a, d = ckpt.theta.shape[0], ckpt.theta.shape[1] + 1
    rng = np.random.default_rng(0)
    prior = MetaPrior(mean=rng.normal(size=(a, d)), std=rng.uniform(0.1, 0.5, (a, d)),
                      factor=0.1 * rng.normal(size=(a * d, rank)), mu_std=np.ones((a, d)),
                      tau=np.ones((a, d)), feat_mean=ckpt.feat_mean, feat_std=ckpt.feat_std,
                      task_mean=np.zeros((2, a, d)), elbo=np.linspace(-100, -10, 20),
                      pooled=np.zeros((a, d)), noise_var=2.0, info={"family": "cartpole"})
    return prior.to_extras()


KINDS = {
    "meta-train": ({"algorithm": "meta-prior"}, True,
                   [{"kind": "task", "eval_return": 30.0}, {"kind": "svi", "step": 1, "elbo": -9.0},
                    {"kind": "svi", "step": 2, "elbo": -5.0}],
                   {"task_returns": [30.0], "final_elbo": -5.0}, "q_std.png"),
    "adapt": ({"algorithm": "blq-adapted"}, True,
              [{"kind": "stage", "episodes": 0, "eval_mean": 9.0},
               {"kind": "episode", "episode": 1, "return": 12.0}],
              {"returns": [9.0], "episodes": [0], "calibration": {"coverage": 0.9}}, "q_std.png"),
    "continual": ({"algorithm": "blq-continual-posterior-prior"}, False,
                  [{"kind": "after_task", "task": 0, "performance": [0.5, 0.1]}],
                  {"average_performance": 0.3, "forgetting": 0.0}, "q_std.png"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_runs_of_every_kind_render(tiny_artifact, tmp_path, kind):
    """Run folders as meta-train, adapt and continual write them (the tiny agent with their
    learner records, metrics, summary and prior): every section renders."""
    learner, with_prior, metrics, summary, figure = KINDS[kind]
    run = _copy_run(tiny_artifact, tmp_path)
    ckpt = load_checkpoint(run)
    ckpt.learner = learner
    if with_prior:
        ckpt.extras = _prior_extras(ckpt)
    save_checkpoint(run / "checkpoint.npz", ckpt)
    prov = json.loads((run / "provenance.json").read_text())
    (run / "provenance.json").write_text(json.dumps({**prov, "kind": kind}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run / "summary.json").write_text(json.dumps(summary))
    page = build_report(run).read_text(encoding="utf-8")
    out = run / "report"
    assert (out / "learning_curve.png").is_file() and (out / figure).is_file()
    assert (out / "prior_spread.png").is_file() == with_prior
    assert "not a Bayesian run" not in page
    assert ("Meta-prior of cartpole" in page) == with_prior


def _episode(n_steps: int, n: int, actions: int, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    feats = rng.poisson(2.0, (n_steps, n)).astype(np.float64)
    return Episode(0, 0.0, n_steps, np.zeros((1, n), bool), feats,
                   rng.integers(actions, size=n_steps), 1.0)


def test_prior_q_std_is_the_prior_predictive_of_a_linear_q(tiny_artifact):
    """√(x Σ_aa xᵀ) against the prior's full covariance."""
    from neuralalchemy.meta.core import MetaPrior

    ckpt = load_checkpoint(_run(tiny_artifact))
    ckpt.extras = _prior_extras(ckpt)
    prior = MetaPrior.from_checkpoint(ckpt)
    ep = _episode(7, ckpt.network.size, 2)
    x = np.concatenate([(ep.features - prior.feat_mean) / prior.feat_std, np.ones((7, 1))], 1)
    cov, d = prior.covariance(), x.shape[1]
    want = np.stack([np.sqrt(np.einsum("sd,de,se->s", x, cov[a * d:(a + 1) * d,
                                                              a * d:(a + 1) * d], x))
                     for a in range(2)], axis=1)
    np.testing.assert_allclose(prior_q_std(prior, ep.features), want, rtol=1e-10)


def test_blq_q_std_shrinks_with_data(tiny_artifact):
    """The rebuilt posterior: more replayed data, smaller std; almost none, the prior's
    √(x·x/λ)."""
    ckpt = load_checkpoint(_run(tiny_artifact))
    ep = _episode(40, ckpt.network.size, 2)
    ckpt.learner = {"algorithm": "blq", "noise_var": 2.0, "replay": 40}
    small, how = blq_q_std(ckpt, ep)
    ckpt.learner["replay"] = 4000
    large, _ = blq_q_std(ckpt, ep)
    assert "40 replayed transitions" in how and "σ² = 2" in how
    assert np.all(large < small)
    ckpt.learner["replay"] = 1e-15
    sd, _ = blq_q_std(ckpt, ep)
    x = np.concatenate([(ep.features - ckpt.feat_mean) / ckpt.feat_std, np.ones((40, 1))], 1)
    lam = ckpt.config.training.prior_precision + 2 * ckpt.config.training.l2
    np.testing.assert_allclose(sd, np.sqrt((x ** 2).sum(axis=1) / lam)[:, None] * [1, 1],
                               rtol=1e-6)


def test_not_a_run_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(alchemy("report", "empty", cwd=tmp_path), "not a run folder")


@pytest.mark.parametrize("case, fragment", [
    ("missing", "does not exist"),
    ("no runs", "no run under"),
    ("out is the run", "would replace the run folder"),
    ("out is another folder", "is not a report folder"),
])
def test_bad_report_arguments(tiny_artifact, tmp_path, capsys, case, fragment):
    run = _copy_run(tiny_artifact, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    args = {"missing": ["report", str(tmp_path / "nope")],
            "no runs": ["report", "--root", str(other)],
            "out is the run": ["report", str(run), "--out", str(run.parent)],
            "out is another folder": ["report", str(run), "--out", str(other)]}[case]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert (other / "keep.txt").is_file() and (run / "checkpoint.npz").is_file()
    assert not (run / "report").exists()
