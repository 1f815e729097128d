"""``alchemy report``: a run folder's records rendered as PNG figures and one offline HTML page.

A run folder (``experiments/runs/<run>/``) keeps ``config.yaml``, ``provenance.json`` (package
versions, git revision, seeds), ``metrics.jsonl``, ``checkpoint.npz`` and ``summary.json``. The
report adds, in its own folder (default ``<run>/report/``, written atomically):

* the header: run, environment, algorithm, result, wall time, seeds, versions, git revision and
  the resolved config;
* learning curves from ``metrics.jsonl`` (train, meta-train, adapt and continual records);
* a spike raster of the reservoir over one greedy episode: the agent is rebuilt from the
  checkpoint and played on the PyTorch engine, and the episode's input is replayed open loop
  (:func:`neuralalchemy.sim.torch_backend.record_spikes`); firing-rate histogram;
* the readout weights (on normalised features) per action and their distribution;
* uncertainty: for a run that carries a meta-prior, the prior's spread per weight and the prior
  predictive std of ``Q(s, a) = x·w_a`` over the visited states, ``√(x Σ_aa xᵀ)``; for a Bayesian
  linear Q run, the posterior std ``√(x P_a⁻¹ xᵀ)`` with ``P_a = λI + p_a·(M/n)·XᵀX/σ²`` rebuilt
  from the ``n`` states ``X`` of the greedy episode (the training replay is not kept in the
  checkpoint): ``M`` is the replay size the learner recorded and ``p_a`` the share of the
  episode's steps that took ``a`` (add-one smoothed);
* resource usage of every artifact under ``experiments/artifacts`` compiled from this run
  (matched by the checkpoint named in its ``manifest.json``): % of each per-core limit per core.

``index.html`` embeds every figure as a ``data:`` URI (and links the PNG beside it): no network,
no JavaScript. ``report.json`` lists the sections, figures and notes; ``spikes.npz`` holds the
recorded raster.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy import report_plots as rp
from neuralalchemy.agent_io import raster_features
from neuralalchemy.checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError, load_checkpoint
from neuralalchemy.fsio import atomic_dir, atomic_write_bytes, atomic_write_json, sha256_file
from neuralalchemy.records import read_metrics

INDEX = "index.html"
MANIFEST = "report.json"
RASTER_STEPS = 300
"""Timesteps shown in the raster figure (the whole episode enters the rates and uncertainty)."""
MAX_TIMESTEPS = 20_000
"""Timesteps of the greedy episode replayed open loop (a bound on the report's cost)."""
EPISODE_SEED = 1_000_000
"""Seed of the greedy episode: the first evaluation seed of training (``train.EVAL_SEED``)."""
RUN_MARKERS = ("provenance.json", CHECKPOINT_NAME)


class ReportError(ValueError):
    """The report cannot be made (not a run folder, an unsafe output folder); one line."""


# ---------------------------------------------------------------- reading a run
@dataclass
class RunRecords:
    """Everything a run folder holds that the report shows."""

    path: Path
    config_text: str
    provenance: dict[str, Any]
    summary: dict[str, Any]
    metrics: list[dict[str, Any]]
    ckpt: Checkpoint | None
    ckpt_note: str = ""

    @property
    def kind(self) -> str:
        """``train``, ``meta-train``, ``adapt`` or ``continual``."""
        return str(self.provenance.get("kind", "train"))

    @property
    def algorithm(self) -> str:
        """The learner's algorithm as the checkpoint (else summary, else config) names it."""
        if self.ckpt is not None and self.ckpt.learner.get("algorithm"):
            return str(self.ckpt.learner["algorithm"])
        if self.summary.get("algorithm"):
            return str(self.summary["algorithm"])
        return _config_value(self.config_text, "training", "algorithm") or "unknown"

    @property
    def env(self) -> str:
        """The environment (with its task, for a task family)."""
        if self.ckpt is not None:
            return self.ckpt.config.env
        return str(self.summary.get("env") or _config_value(self.config_text, "env") or "?")


def _config_value(text: str, *keys: str) -> str | None:
    import yaml

    try:
        node: Any = yaml.safe_load(text)
        for key in keys:
            node = node[key]
        return None if node is None else str(node)
    except (yaml.YAMLError, KeyError, TypeError):
        return None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def is_run_dir(path: Path) -> bool:
    """A folder holding a run's provenance or checkpoint."""
    return path.is_dir() and any((path / m).is_file() for m in RUN_MARKERS)


def read_run(run_dir: Path) -> RunRecords:
    """Read a run folder; a missing or damaged file leaves its part empty (with a note)."""
    if not is_run_dir(run_dir):
        raise ReportError(f"{run_dir} is not a run folder (no {' or '.join(RUN_MARKERS)}); "
                          "pass a folder under experiments/runs")
    cfg = run_dir / "config.yaml"
    ckpt, note = None, ""
    try:
        ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    except CheckpointError as exc:
        note = str(exc)
    return RunRecords(run_dir, cfg.read_text(encoding="utf-8") if cfg.is_file() else "",
                      _json(run_dir / "provenance.json"), _json(run_dir / "summary.json"),
                      read_metrics(run_dir / "metrics.jsonl"), ckpt, note)


# ---------------------------------------------------------------- the greedy episode
@dataclass
class Episode:
    """One greedy episode on the PyTorch engine and its open-loop replay."""

    seed: int
    ret: float
    length: int
    raster: np.ndarray      # (T, N) bool, row t driven by the input of t − 1
    features: np.ndarray    # (steps, N) readout features of each environment step
    actions: np.ndarray     # (steps,) actions the closed loop took
    reproduced: float       # fraction of steps whose action the replayed features give again


episode_features = raster_features
"""Readout features per environment step from a replayed raster (:func:`~neuralalchemy.agent_io.
raster_features`)."""


def greedy_episode(ckpt: Checkpoint, seed: int = EPISODE_SEED,
                   max_timesteps: int = MAX_TIMESTEPS) -> Episode:
    """Play one greedy episode of ``ckpt``'s agent and record its spikes (at most
    ``max_timesteps`` timesteps of them)."""
    from neuralalchemy.agent_io import act
    from neuralalchemy.sim.torch_backend import play, record_spikes

    agent = ckpt.agent()
    rec = play(agent, [seed], record_inputs=True)[0]
    raster = record_spikes(ckpt.network, rec.extra["inputs"][:max_timesteps])
    features = episode_features(raster, agent.steps_per_obs, agent.readout.trace_decay)
    n = min(len(features), len(rec.actions))
    features, actions = features[:n], np.asarray(rec.actions)[:n]
    again = act(features, agent.readout)
    same = np.all(np.isclose(again.reshape(n, -1), actions.reshape(n, -1)), axis=1)
    return Episode(seed, rec.ret, rec.length, raster, features, actions,
                   float(same.mean()) if n else 1.0)


def excitatory(ckpt: Checkpoint) -> np.ndarray:
    """Neurons whose outgoing recurrent weights are not negative (Dale's law)."""
    w = ckpt.network.w_rec
    return np.asarray(w.sum(axis=0)).ravel() >= 0


# ---------------------------------------------------------------- uncertainty
def prior_q_std(prior: Any, features: np.ndarray) -> np.ndarray:
    """(steps, A) prior predictive std of ``Q(s, a) = x·w_a`` under a meta-prior
    ``N(mean, U Uᵀ + diag std²)`` at raw features ``features``."""
    x = _design(features, prior.feat_mean, prior.feat_std)
    a_n, d = prior.mean.shape
    out = np.empty((len(x), a_n))
    for a in range(a_n):
        u = prior.factor[a * d:(a + 1) * d]
        var = ((x ** 2) * prior.std[a] ** 2).sum(axis=1) + ((x @ u) ** 2).sum(axis=1)
        out[:, a] = np.sqrt(var)
    return out


def blq_q_std(ckpt: Checkpoint, ep: Episode) -> tuple[np.ndarray, str]:
    """(steps, A) posterior std of Q rebuilt from the greedy episode (module docstring), and
    a sentence on how it was rebuilt."""
    from neuralalchemy.learners.optim import l2_precision

    tr = ckpt.config.training
    lam = tr.prior_precision + l2_precision(tr.l2)
    noise = ckpt.learner.get("noise_var") or tr.noise_var
    x = _design(ep.features, ckpt.feat_mean, ckpt.feat_std)
    n_actions = ckpt.theta.shape[0]
    replay = ckpt.learner.get("replay")
    share = (np.bincount(ep.actions.astype(int), minlength=n_actions) + 1) / (len(x) + n_actions)
    gram = x.T @ x * (float(replay) if replay else len(x)) / max(len(x), 1) / (noise or 1.0)
    out = np.empty((len(x), n_actions))
    for a in range(n_actions):
        precision = lam * np.eye(x.shape[1]) + share[a] * gram
        half = np.linalg.solve(np.linalg.cholesky(precision), x.T)
        out[:, a] = np.sqrt((half ** 2).sum(axis=0))
    how = (f"Rebuilt from the {len(x)} states of the greedy episode (the training replay is not "
           "kept in the checkpoint), "
           + (f"weighted to the {float(replay):.0f} replayed transitions of the last refit"
              if replay else "each counted once (the learner recorded no replay size)")
           + " and shared between the actions as the episode took them: λ = "
           + f"{lam:g}, σ² = "
           + (f"{float(noise):.3g}" if noise else "1 (the learner recorded no noise variance)")
           + ". An approximation of the learner's posterior.")
    return out, how


def _design(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (features - mean) / std
    return np.concatenate([z, np.ones((len(z), 1))], axis=1)


# ---------------------------------------------------------------- sections
@dataclass
class Figure:
    """One PNG of the report."""

    name: str
    caption: str


@dataclass
class Section:
    """A titled part of the page: figures, plain-text notes, and trusted HTML (tables)."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    html: str = ""


@dataclass
class Ctx:
    """What every section builder sees."""

    rec: RunRecords
    folder: Path
    episode: Episode | None
    episode_note: str


def _header(c: Ctx) -> Section:
    r, s, p = c.rec, c.rec.summary, c.rec.provenance
    rows = [("run", r.path.name), ("kind", r.kind), ("environment", r.env),
            ("algorithm", r.algorithm), ("result", _result_text(s)),
            ("environment steps", f"{s['env_steps']:,}" if "env_steps" in s else "–"),
            ("wall time", f"{s['wall_s']:.1f} s" if "wall_s" in s else "–"),
            ("seeds", ", ".join(f"{k} {v}" for k, v in p.get("seeds", {}).items()) or "–"),
            ("git revision", str(p.get("git_revision", "unknown"))),
            ("platform", str(p.get("platform", "unknown")))]
    known = {"versions", "git_revision", "platform", "seeds"}
    rows += [(k, json.dumps(v)) for k, v in p.items() if k not in known]
    versions = sorted(p.get("versions", {}).items())
    sec = Section("header", "Run", html=_table(rows) + "<h3>Package versions</h3>"
                  + (_table(versions) if versions else "<p>no provenance.json</p>"))
    sec.html += _details("resolved config (config.yaml)", r.config_text or "no config.yaml")
    if s:
        sec.html += _details("summary.json", json.dumps(s, indent=2, sort_keys=True))
    if r.ckpt_note:
        sec.notes.append(r.ckpt_note)
    return sec


def _result_text(s: dict[str, Any]) -> str:
    if "eval_mean" in s:
        solved = "solved" if s.get("solved") else "not solved"
        return (f"{solved}: evaluation mean {s['eval_mean']:.1f} ± {s.get('eval_std', 0.0):.1f} "
                f"over {s.get('eval_episodes', '?')} episodes (target {s.get('target_return')})")
    if "returns" in s and s.get("episodes"):
        return f"greedy return {s['returns'][-1]:.1f} after {s['episodes'][-1]} episodes"
    if "task_returns" in s:
        return ("training-task returns " + ", ".join(f"{v:.1f}" for v in s["task_returns"])
                + f"; final ELBO {s.get('final_elbo', float('nan')):.1f}")
    if "average_performance" in s:
        return (f"average performance {s['average_performance']:.3f}, forgetting "
                f"{s.get('forgetting', float('nan')):.3f}")
    return "no summary.json (the run has not finished)"


_CURVES: dict[str, Callable[[list[dict[str, Any]], Path, str], Path]] = {
    "svi": rp.meta_curves, "task": rp.meta_curves, "stage": rp.adapt_curves,
    "episode": rp.adapt_curves, "after_task": rp.continual_curves}


def _curves(c: Ctx) -> Section:
    from neuralalchemy.plots import learning_curve

    sec = Section("curves", "Learning curves")
    metrics = c.rec.metrics
    kinds = {str(m.get("kind")) for m in metrics}
    title = f"{c.rec.env}: {c.rec.algorithm}"
    path = c.folder / "learning_curve.png"
    if not metrics:
        sec.notes.append("no metrics: metrics.jsonl is missing or empty")
    elif kinds & {"train", "eval"}:
        target = c.rec.summary.get("target_return", c.rec.provenance.get("target_return"))
        learning_curve(metrics, path, title, target)
    elif kinds & set(_CURVES):
        _CURVES[next(k for k in _CURVES if k in kinds)](metrics, path, title)
    else:
        sec.notes.append(f"no learning-curve records in metrics.jsonl (kinds: {sorted(kinds)})")
    if path.is_file():
        sec.figures.append(Figure(path.name, f"{len(metrics)} records of metrics.jsonl"))
    return sec


def _spikes(c: Ctx) -> Section:
    sec = Section("spikes", "Reservoir spikes")
    ep, ckpt = c.episode, c.rec.ckpt
    if ep is None or ckpt is None:
        sec.notes.append(c.episode_note)
        return sec
    k = ckpt.config.reservoir.steps_per_obs
    shown = ep.raster[:RASTER_STEPS]
    rp.spike_raster(shown, excitatory(ckpt), k, c.folder / "raster.png",
                    f"{ckpt.network.size} LIF neurons, first {len(shown)} timesteps")
    rates = ep.raster.mean(axis=0)
    rp.rate_histogram(rates, c.folder / "rates.png")
    sec.figures += [Figure("raster.png", "spike raster of the greedy episode"),
                    Figure("rates.png", "firing rate of each neuron over the episode")]
    sec.notes.append(f"Greedy episode (seed {ep.seed}) on the PyTorch engine: return "
                     f"{ep.ret:.1f} over {ep.length} environment steps; {ep.raster.shape[0]} "
                     f"timesteps replayed open loop, {int(ep.raster.sum()):,} spikes, mean rate "
                     f"{rates.mean():.4f} spikes per neuron per timestep. The replayed features "
                     f"give the closed loop's action at {ep.reproduced:.1%} of the steps.")
    buf = io.BytesIO()
    np.savez_compressed(buf, raster=ep.raster, actions=ep.actions)
    atomic_write_bytes(c.folder / "spikes.npz", buf.getvalue())
    return sec


def _readout(c: Ctx) -> Section:
    sec = Section("readout", "Readout weights")
    ckpt = c.rec.ckpt
    if ckpt is None:
        sec.notes.append(c.rec.ckpt_note or "no checkpoint")
        return sec
    theta = np.asarray(ckpt.theta, dtype=np.float64)
    rp.readout_heatmap(theta, c.folder / "readout.png")
    rp.weight_histogram(theta, c.folder / "readout_hist.png")
    sec.figures += [Figure("readout.png", "weights per action (neuron order as in the raster) "
                                          "and each action's weights sorted"),
                    Figure("readout_hist.png", "distribution of the weights per action")]
    bias = np.zeros(theta.shape[0]) if ckpt.bias is None else ckpt.bias
    sec.notes.append(f"{theta.shape[0]} actions × {theta.shape[1]} features; weights act on "
                     "features normalised by the checkpoint's feature mean and std; bias "
                     + ", ".join(f"{b:+.3f}" for b in bias) + "; |w| mean "
                     f"{np.abs(theta).mean():.4f}, max {np.abs(theta).max():.4f}.")
    return sec


def _uncertainty(c: Ctx) -> Section:
    from neuralalchemy.config import ConfigError
    from neuralalchemy.meta.core import MetaPrior

    sec = Section("uncertainty", "Uncertainty")
    ckpt, ep = c.rec.ckpt, c.episode
    if ckpt is None:
        sec.notes.append(c.rec.ckpt_note or "no checkpoint")
        return sec
    algorithm = c.rec.algorithm
    try:
        prior = MetaPrior.from_checkpoint(ckpt)
    except ConfigError:
        prior = None
    if prior is not None:
        rp.prior_spread(prior.std[:, :-1], c.folder / "prior_spread.png")
        sec.figures.append(Figure("prior_spread.png", "meta-prior std per readout weight"))
        sec.notes.append(_prior_note(c.rec, prior))
        if ep is not None and len(ep.features):
            rp.q_uncertainty(prior_q_std(prior, ep.features), c.folder / "q_std.png",
                             "prior predictive std of Q over the greedy episode's states")
            sec.figures.append(Figure("q_std.png", "meta-prior std of Q(s, a) per action"))
    elif algorithm.startswith("blq"):
        if ep is None or not len(ep.features):
            sec.notes.append(c.episode_note or "the greedy episode has no steps")
            return sec
        sd, how = blq_q_std(ckpt, ep)
        rp.q_uncertainty(sd, c.folder / "q_std.png",
                         "posterior std of Q over the greedy episode's states")
        sec.figures.append(Figure("q_std.png", "posterior std of Q(s, a) per action"))
        sec.notes.append(how + " Median std per action: "
                         + ", ".join(f"{v:.3g}" for v in np.median(sd, axis=0)) + ".")
    else:
        sec.notes.append(f"not a Bayesian run (algorithm {algorithm}): the readout is a point "
                         "estimate, with no posterior or prior to show")
    return sec


def _prior_note(rec: RunRecords, prior: Any) -> str:
    text = (f"Meta-prior of {prior.info.get('family', '?')} over {prior.mean.shape[0]} actions × "
            f"{prior.mean.shape[1]} weights (features + bias); median std per action "
            + ", ".join(f"{np.median(prior.std[a, :-1]):.3f}" for a in range(prior.mean.shape[0]))
            + f"; low-rank task directions: {prior.factor.shape[-1]}; noise variance "
            f"{prior.noise_var:.3g}.")
    calib = rec.summary.get("calibration")
    if rec.kind == "adapt" and isinstance(calib, dict):
        text += (f" This agent was adapted from that prior; its posterior's std of Q had median "
                 f"{calib.get('q_sd_epistemic_median', float('nan')):.3g}; inside the "
                 f"{calib.get('level', 0.9):.0%} predictive interval fell "
                 + (f"{calib['coverage_one_step']:.1%} of one-step fitted-Q targets and "
                    if "coverage_one_step" in calib else "")
                 + f"{calib.get('coverage', float('nan')):.1%} of discounted returns.")
    return text


def _resources(c: Ctx) -> Section:
    sec = Section("resources", "Resource usage")
    found = compiled_artifacts(c.rec.path)
    if not found:
        sec.notes.append("no artifact compiled from this run under experiments/artifacts; "
                         f"`alchemy compile {c.rec.path}` makes one")
    for folder in found:
        res = _json(folder / "resources.json")
        place = res.get("placement")
        manifest = _json(folder / "manifest.json")
        sec.html += f"<h3>{_esc(folder.name)}</h3>"
        if not isinstance(place, dict):
            sec.html += (f"<p>target {_esc(str(manifest.get('target', '?')))}: "
                         f"{res.get('neurons', '?')} neurons, {res.get('synapses', '?')} "
                         "synapses, no core placement for this target</p>")
            continue
        name = "cores-" + "".join(ch if ch.isalnum() or ch in "-_." else "_"
                                  for ch in folder.name) + ".png"
        columns = _usage_columns(place)
        rp.core_usage(place.get("cores", []), columns, c.folder / name,
                      f"{place.get('title', '?')}: per-core usage")
        sec.figures.append(Figure(name, f"per-core usage of {folder.name}"))
        sec.html += _placement_html(place, columns)
    return sec


def compiled_artifacts(run_dir: Path) -> list[Path]:
    """Artifacts in the run's experiments folder whose manifest names this run's checkpoint
    (same run folder name, or the same checkpoint hash)."""
    root = run_dir.resolve().parent.parent / "artifacts"
    if not root.is_dir():
        return []
    ckpt = run_dir / CHECKPOINT_NAME
    digest = sha256_file(ckpt) if ckpt.is_file() else None
    out = []
    for folder in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
        source = _json(folder / "manifest.json").get("source", {})
        if not isinstance(source, dict):
            continue
        named = Path(str(source.get("checkpoint", ""))).parent.name == run_dir.resolve().name
        if named or (digest is not None and source.get("sha256") == digest):
            out.append(folder)
    return out


def _usage_columns(place: dict[str, Any]) -> dict[str, str]:
    from neuralalchemy.compile.placement import USAGE_COLUMNS

    limits = place.get("limits", {})
    return {key: title + ("*" if limits.get(limit, {}).get("estimated") else "")
            for key, (title, _, limit) in USAGE_COLUMNS.items()}


def _placement_html(place: dict[str, Any], columns: dict[str, str]) -> str:
    t = place.get("totals", {})
    head = (f"<p>{_esc(str(place.get('title', '?')))}: {t.get('neurons', 0):,} neurons, "
            f"{t.get('synapses', 0):,} synapses on {t.get('cores', 0)} cores, "
            f"{t.get('chips', 0)} chips</p>")
    cores = place.get("cores", [])
    rows = [[str(r.get(k, "")) for k in ("chip", "core", "population", "neurons")]
            + [f"{float(r.get(k, 0.0)):.1f}" for k in columns] for r in cores[:64]]
    if len(cores) > 64:
        rows.append(["…", "", f"{len(cores) - 64} more cores", *[""] * (1 + len(columns))])
    body = _table(rows, header=["chip", "core", "population", "neurons", *columns.values()])
    if any(v.endswith("*") for v in columns.values()):
        body += "<p class='note'>* per-core limit is an estimate (see resources.json)</p>"
    return head + body


SECTIONS: tuple[Callable[[Ctx], Section], ...] = (
    _header, _curves, _spikes, _readout, _uncertainty, _resources)


# ---------------------------------------------------------------- HTML
def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _table(rows: list[Any], header: list[str] | None = None) -> str:
    head = ("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>") if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_esc(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _details(summary: str, text: str) -> str:
    return f"<details><summary>{_esc(summary)}</summary><pre>{_esc(text)}</pre></details>"


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:left;font-size:90%}th{background:#f3f3f3}pre{background:#f7f7f7;padding:.5em;
overflow-x:auto}figure{margin:1em 0}img{max-width:100%}figcaption,.note{color:#555;
font-size:90%}h2{border-bottom:1px solid #ddd;margin-top:1.5em}"""


def _section_html(sec: Section, folder: Path) -> str:
    parts = [f"<section id='{sec.key}'><h2>{_esc(sec.title)}</h2>"]
    parts += [f"<p>{_esc(n)}</p>" for n in sec.notes]
    parts.append(sec.html)
    for fig in sec.figures:
        data = base64.b64encode((folder / fig.name).read_bytes()).decode("ascii")
        parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{_esc(fig.name)}'>"
                     f"<figcaption>{_esc(fig.caption)} (<a href='{_esc(fig.name)}'>"
                     f"{_esc(fig.name)}</a>)</figcaption></figure>")
    return "".join(parts) + "</section>"


def render_html(rec: RunRecords, sections: list[Section], folder: Path) -> str:
    """The self-contained page: every figure embedded, no external reference."""
    toc = " · ".join(f"<a href='#{s.key}'>{_esc(s.title)}</a>" for s in sections)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_esc(rec.path.name)}: run report</title><style>{_CSS}</style></head><body>"
            f"<h1>{_esc(rec.path.name)}</h1><p class='note'>{toc}</p>"
            + "".join(_section_html(s, folder) for s in sections)
            + f"<p class='note'>made {_esc(time.strftime('%Y-%m-%d %H:%M:%S %z'))}</p>"
            "</body></html>\n")


# ---------------------------------------------------------------- the report
def _check_out(out: Path, run_dir: Path) -> None:
    o, r = out.resolve(), run_dir.resolve()
    if o == r or o in r.parents:
        raise ReportError(f"--out {out} would replace the run folder; pick a folder of its own")
    if o.exists() and (not o.is_dir() or (any(o.iterdir()) and not (o / MANIFEST).is_file())):
        raise ReportError(f"{out} exists and is not a report folder; pick another --out")


def _replay(rec: RunRecords) -> tuple[Episode | None, str]:
    from neuralalchemy.sim.backend import BackendUnavailable

    if rec.ckpt is None:
        return None, rec.ckpt_note or "no checkpoint"
    try:
        return greedy_episode(rec.ckpt), ""
    except (ValueError, OSError, ImportError, RuntimeError, BackendUnavailable) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"the greedy episode could not be played: {first}"


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Render ``run_dir``'s records into ``out_dir`` (default ``run_dir/report``, replaced
    atomically); returns the path of ``index.html``."""
    run_dir = Path(run_dir)
    rec = read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    _check_out(out, run_dir)
    episode, note = _replay(rec)
    with atomic_dir(out, replace=True) as tmp:
        ctx = Ctx(rec, tmp, episode, note)
        sections = [build(ctx) for build in SECTIONS]
        atomic_write_bytes(tmp / INDEX, render_html(rec, sections, tmp).encode("utf-8"))
        atomic_write_json(tmp / MANIFEST, {
            "run": str(run_dir.resolve()), "kind": rec.kind, "algorithm": rec.algorithm,
            "spikes": int(episode.raster.sum()) if episode is not None else None,
            "sections": [{"key": s.key, "title": s.title, "notes": s.notes,
                          "figures": [f.name for f in s.figures]} for s in sections]})
    return out / INDEX
