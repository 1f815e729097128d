"""Supervised-task runs as artifacts: ``alchemy compile`` of an ``alchemy train --task`` run and
``alchemy run`` of the result on any backend.

A task artifact holds the reservoir (in the target's formats, placed on its cores), the task's
encoder and its trained readout; the task's data are regenerated from the recorded config (every
task is generated in code from ``task.seed``), so the artifact stays self-contained without
carrying the data. Layout (format version 1)::

    manifest.json   as an agent artifact, with "kind": "task", the run's config ("config") and
                    its test metric at training time ("trained")
    network.npz     NetworkParams arrays (Loihi fixed point, or floats for ``cpu``)
    task.npz        readout w (O, F), b (O,), mean (F,), std (F,), readout_kind; encoder
                    centers / sigma / kind for series tasks
    resources.json  placement on the target's cores
    network.nir     NIR graph of the reservoir (with its readout for series tasks)

Attention gains were folded into the input weights when the run trained them, so the compiled
input connection carries them (``docs/guide/backprop.md``).

Running: the backend drives the network open loop (:func:`record` of the torch, Lava or Brian2
backend) from rest. A series task runs its test rows preceded by ``task.washout`` rows; a
sequence task (digits) runs each of the first ``episodes`` test sequences from rest, as training
reset the reservoir before each. Every raster starts with one rest step (the open-loop convention
shared by the backends), so a metric can differ from the training-time one by that step and the
shorter warm-up; backends running the same artifact agree spike for spike.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuralalchemy.agent_io import (
    DeployedAgent,
    EncoderParams,
    ReadoutParams,
    encode,
    raster_features,
)
from neuralalchemy.compile.artifact import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ArtifactError,
    npz_bytes,
    read_manifest,
)
from neuralalchemy.config import Config
from neuralalchemy.fsio import atomic_dir, atomic_write_bytes, atomic_write_json, sha256_file
from neuralalchemy.network import NetworkParams, dequantize, fan_in, quantize_network

TASK_KIND = "task"
TASK_FILES = frozenset({"network.npz", "task.npz"})


def is_task_checkpoint(path: Path) -> bool:
    """True when ``path`` is a checkpoint of ``alchemy train --task`` (it is read, not trusted:
    any failure means 'not a task checkpoint' and the agent loader reports the problem)."""
    from neuralalchemy.supervised import TASK_CHECKPOINT_KIND

    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            return bool(json.loads(str(data["meta"])).get("kind") == TASK_CHECKPOINT_KIND)
    except Exception:
        return False


def is_task_artifact(folder: Path) -> bool:
    """True when the artifact's manifest says it holds a supervised task."""
    try:
        return read_manifest(Path(folder)).get("kind") == TASK_KIND
    except ArtifactError:
        return False


# ---------------------------------------------------------------- compile
def compile_task_run(ckpt_path: Path, target: str, out: Path) -> tuple[Path, dict[str, Any]]:
    """Compile a task checkpoint for ``target`` (``cpu`` or a Loihi profile) into ``out``.

    A network changes precision for the target (float → fixed for Loihi, fixed → float for
    ``cpu``) and then gets its readout re-fitted on the new network's training features, so the
    artifact's readout matches the network it sits on.
    """
    from neuralalchemy.compile.compiler import placement_for
    from neuralalchemy.supervised import load_task_checkpoint, make_task

    if target == "loihi1":
        raise ValueError("target loihi1: supervised tasks send graded (8-bit payload) input, "
                         "which only Loihi 2 supports; compile with --target loihi2")
    meta, network, ro = load_task_checkpoint(ckpt_path)
    cfg = Config.from_dict(meta["config"])
    enc = _encoder(ckpt_path, meta)
    trained = _trained_metric(ckpt_path.parent)
    refit: dict[str, Any] | None = None
    want = "float" if target == "cpu" else "fixed"
    if network.precision != want:
        network = dequantize(network) if want == "float" else quantize_network(network)
        ro, refit = _refit(cfg, make_task(cfg), network, enc)
    resources: dict[str, Any] = {
        "target": target, "neurons": network.size, "input_channels": network.n_inputs,
        "synapses": int(fan_in(network.w_in).sum() + fan_in(network.w_rec).sum()),
        "readout": f"host ({ro.kind} on the spike features)"}
    if target != "cpu":
        resources["placement"] = placement_for(network, target).summary()
    arrays: dict[str, Any] = {"readout_w": ro.w, "readout_b": ro.b, "readout_mean": ro.mean,
                              "readout_std": ro.std, "readout_kind": np.array(ro.kind)}
    if enc is not None:
        arrays.update({"encoder_centers": enc.centers, "encoder_sigma": enc.sigma,
                       "encoder_kind": np.array(enc.kind)})
    with atomic_dir(out, replace=True) as tmp:
        atomic_write_bytes(tmp / "network.npz", npz_bytes(network.to_arrays()))
        atomic_write_bytes(tmp / "task.npz", npz_bytes(arrays))
        atomic_write_json(tmp / "resources.json", resources)
        _write_nir(tmp / "network.nir", cfg, network, ro, enc)
        files = {name: sha256_file(tmp / name)
                 for name in ("network.npz", "task.npz", "resources.json", "network.nir")}
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": TASK_KIND,
            "target": target, "precision": network.precision, "env_id": f"task:{cfg.task.name}",
            "task": cfg.task.name, "steps_per_obs": cfg.reservoir.steps_per_obs,
            "neurons": network.size, "config": cfg.to_dict(), "trained": trained,
            "refit": refit, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": {"checkpoint": str(ckpt_path), "sha256": sha256_file(ckpt_path)},
            "files": files,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return out, {"manifest": manifest, "resources": resources, "quantization": None}


def _encoder(ckpt_path: Path, meta: dict[str, Any]) -> EncoderParams | None:
    if meta.get("encoder_kind") is None:
        return None
    with np.load(ckpt_path, allow_pickle=False) as data:
        return EncoderParams(data["encoder.centers"], data["encoder.sigma"],
                             kind=str(meta["encoder_kind"]))


def _trained_metric(run_dir: Path) -> dict[str, Any] | None:
    """The run's own test metric (``summary.json``), when the run folder has one."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        return {"metric": summary["metric"], "value": float(summary["value"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _refit(cfg: Config, task: Any, network: NetworkParams,
           enc: EncoderParams | None) -> tuple[Any, dict[str, Any]]:
    """The closed-form readout of ``network``'s features and its test metrics."""
    from neuralalchemy.supervised import (
        METRIC_OF,
        SequenceTask,
        evaluate_sequences,
        evaluate_series,
        task_features,
    )

    feats = task_features(cfg, task, network, enc)
    if isinstance(task, SequenceTask):
        metrics, ro = evaluate_sequences(task, feats, cfg.task.ridge)
    else:
        metrics, ro = evaluate_series(task, feats, cfg.task.ridge, cfg.task.select_ridge)
    metric = METRIC_OF[task.kind]
    return ro, {"metric": metric, "value": float(metrics[metric])}


def _write_nir(path: Path, cfg: Config, network: NetworkParams, ro: Any,
               enc: EncoderParams | None) -> None:
    """The reservoir as NIR; series tasks carry their readout (standardisation folded in)."""
    from neuralalchemy.compile.nir_export import write_nir

    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    if enc is not None:
        w = ro.w / ro.std[None, :]
        b = ro.b - w @ ro.mean
    else:  # a sequence readout reads L steps of features at once: the graph stops at the neurons
        w, b = np.zeros((0, network.size)), np.zeros(0)
    enc = enc or EncoderParams(np.zeros((network.n_inputs, 1)), np.ones(network.n_inputs))
    agent = DeployedAgent(f"task:{cfg.task.name}", network, enc,
                          ReadoutParams(w, b, decay, np.zeros(0), np.zeros(0)),
                          cfg.reservoir.steps_per_obs)
    write_nir(agent, path)


# ---------------------------------------------------------------- load and run
def load_task_artifact(folder: str | Path) -> tuple[dict[str, Any], NetworkParams, Any,
                                                    EncoderParams | None]:
    """(manifest, network, readout, encoder) of a verified task artifact."""
    from neuralalchemy.compile.artifact import _load_npz, verify
    from neuralalchemy.supervised import LinearReadout

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("kind") != TASK_KIND:
        raise ArtifactError(f"{folder} holds an agent, not a supervised task")
    verify(folder, manifest, TASK_FILES)
    try:
        net = NetworkParams.from_arrays(_load_npz(folder / "network.npz"))
        a = _load_npz(folder / "task.npz")
        ro = LinearReadout(a["readout_w"], a["readout_b"], a["readout_mean"], a["readout_std"],
                           kind=str(a["readout_kind"]))
        enc = (EncoderParams(a["encoder_centers"], a["encoder_sigma"],
                             kind=str(a["encoder_kind"])) if "encoder_centers" in a else None)
        Config.from_dict(manifest["config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"{folder} is inconsistent ({exc}); re-run `alchemy compile`") \
            from None
    return manifest, net, ro, enc


def record(backend: str, network: NetworkParams, payloads: np.ndarray) -> np.ndarray:
    """Open-loop spikes (T, N) of ``payloads`` (T, C) on ``backend``."""
    if backend == "torch":
        from neuralalchemy.sim.torch_backend import record_spikes
        return record_spikes(network, payloads)
    if backend == "sim":
        from neuralalchemy.sim.lava_backend import record_spikes as lava_record
        return lava_record(network, payloads)
    if backend == "loihi":
        from neuralalchemy.sim.backend import BackendUnavailable
        from neuralalchemy.sim.lava_backend import hardware_status
        ok, why = hardware_status()
        raise BackendUnavailable(why if not ok else "backend 'loihi' plays agents only; run a "
                                 "task artifact with --backend sim (bit-exact to Loihi 2)")
    if backend in ("brian2", "brian2-detailed"):
        from neuralalchemy.sim.brian2_backend import record_spikes as b2_record
        return b2_record(network, payloads,
                         mode="detailed" if backend == "brian2-detailed" else "exact")
    raise ValueError(f"unknown backend {backend!r}")


def _drive(backend: str, network: NetworkParams, rows: np.ndarray, k: int,
           decay: float) -> tuple[np.ndarray, int]:
    """Features (R, N) of input rows (R, C) each held ``k`` timesteps, and the spike count."""
    payloads = np.concatenate([np.repeat(rows, k, axis=0), np.zeros_like(rows[:1])])
    spikes = record(backend, network, payloads)
    return raster_features(spikes, k, decay), int(spikes.sum())


def task_outputs(backend: str, manifest: dict[str, Any], network: NetworkParams,
                 enc: EncoderParams | None, episodes: int) -> dict[str, Any]:
    """Features of the task's test part on ``backend``: series rows or the first ``episodes``
    test sequences; with their targets, spike count and wall time."""
    from neuralalchemy.supervised import SequenceTask, make_task, payload

    cfg = Config.from_dict(manifest["config"])
    task = make_task(cfg)
    k = cfg.reservoir.steps_per_obs
    decay = cfg.readout.trace_decay if cfg.readout.features == "trace" else 0.0
    levels = network.payload_levels if network.payload_levels > 1 else 0
    start = time.perf_counter()
    if isinstance(task, SequenceTask):
        idx = np.arange(task.train, min(len(task.labels), task.train + episodes))
        feats, spikes = [], 0
        for i in idx:
            f, s = _drive(backend, network, payload(task.x[i], network), k, decay)
            feats.append(f.reshape(-1))
            spikes += s
        return {"task": task, "features": np.array(feats), "targets": task.labels[idx],
                "spikes": spikes, "timesteps": len(idx) * (task.x.shape[1] * k + 1),
                "wall_s": time.perf_counter() - start}
    assert enc is not None
    test = task.test_rows
    lead = min(cfg.task.washout, test.start)
    rows = encode(task.u[test.start - lead:test.stop], enc, levels)
    f, spikes = _drive(backend, network, rows, k, decay)
    return {"task": task, "features": f[lead:], "targets": task.y[test], "spikes": spikes,
            "timesteps": len(rows) * k + 1, "wall_s": time.perf_counter() - start}


def _metric(out: dict[str, Any], ro: Any) -> tuple[str, float]:
    from neuralalchemy.supervised import (
        METRIC_OF,
        SequenceTask,
        _series_metrics,
        accuracy,
    )

    task = out["task"]
    if isinstance(task, SequenceTask):
        return "accuracy", accuracy(out["targets"], ro(out["features"]).argmax(axis=1))
    name = METRIC_OF[task.kind]
    return name, float(_series_metrics(task, out["targets"], ro(out["features"]))[name])


def run_task_artifact(folder: Path, backend: str, episodes: int,
                      compare: str | None = None) -> dict[str, Any]:
    """Run a task artifact's test part on ``backend`` (and ``compare``); metrics and agreement."""
    manifest, network, ro, enc = load_task_artifact(folder)
    out = task_outputs(backend, manifest, network, enc, episodes)
    metric, value = _metric(out, ro)
    result: dict[str, Any] = {
        "artifact": str(folder), "backend": backend, "kind": TASK_KIND,
        "task": manifest["task"], "target": manifest.get("target"),
        "precision": manifest.get("precision"), "metric": metric, "value": value,
        "trained": manifest.get("trained"), "rows": int(len(out["features"])),
        "total_spikes": out["spikes"], "timesteps": out["timesteps"],
        "ms_per_timestep": 1000.0 * out["wall_s"] / max(out["timesteps"], 1)}
    if compare and compare != backend:
        ref = task_outputs(compare, manifest, network, enc, episodes)
        ref_metric = _metric(ref, ro)[1]
        result["compare"] = {
            "backend": compare, "value": ref_metric,
            "identical_features": bool(np.array_equal(ref["features"], out["features"])),
            "max_feature_difference": float(np.max(np.abs(ref["features"] - out["features"]))),
            "total_spikes": ref["spikes"]}
    return result
