"""``alchemy compile``: checkpoint → quantized, placed, self-contained artifact.

A supervised-task run (``alchemy train --task``) compiles through
:mod:`neuralalchemy.compile.task_artifact` into a task artifact.

For a Loihi target the network is mapped to the chip's fixed-point formats (a network trained in
fixed point already is in them; a float one is quantized by :func:`~neuralalchemy.network.
quantize_network`), placed on cores within the target profile's limits, and written with its
resource report and NIR export. The ``cpu`` target writes the float network instead.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from neuralalchemy.agent_io import DeployedAgent
from neuralalchemy.checkpoint import CHECKPOINT_NAME, load_checkpoint
from neuralalchemy.compile.artifact import FORMAT, FORMAT_VERSION, MANIFEST, agent_arrays, npz_bytes
from neuralalchemy.compile.nir_export import from_nir, write_nir
from neuralalchemy.compile.placement import Placement, Population, Projection, place
from neuralalchemy.compile.quantize import quantize_for_target
from neuralalchemy.compile.task_artifact import compile_task_run, is_task_checkpoint
from neuralalchemy.fsio import atomic_dir, atomic_write_json, sha256_file
from neuralalchemy.hardware.profiles import get_profile
from neuralalchemy.network import NetworkParams, dequantize, fan_in

CPU_TARGETS = ("cpu",)


def canonical_target(target: str) -> str:
    """``cpu`` or a Loihi profile name (``loihi`` means Loihi 2)."""
    if target.lower() in CPU_TARGETS:
        return "cpu"
    return get_profile(target).name


def placement_for(network: NetworkParams, target: str) -> Placement:
    """Place the reservoir on the target's cores (raises PlacementError when it cannot fit)."""
    profile = get_profile(target)
    pops = [Population("reservoir", network.size)]
    projs = [
        Projection("input", "encoder", "reservoir", fan_in(network.w_in),
                   profile.weight_bits, network.n_inputs),
        Projection("recurrent", "reservoir", "reservoir", fan_in(network.w_rec),
                   profile.weight_bits, network.size),
    ]
    return place(pops, projs, profile)


def compile_run(source: Path, target: str, out: Path) -> tuple[Path, dict[str, Any]]:
    """Compile ``source`` (a run folder, a checkpoint file or a NIR graph) into ``out``."""
    target = canonical_target(target)
    ckpt_path = source / CHECKPOINT_NAME if source.is_dir() else source
    if is_task_checkpoint(ckpt_path):
        return compile_task_run(ckpt_path, target, out)
    if ckpt_path.suffix.lower() == ".nir":
        agent, eval_mean = from_nir(ckpt_path), None
        float_net = agent.network
    else:
        ckpt = load_checkpoint(ckpt_path)
        agent, eval_mean, float_net = ckpt.agent(), ckpt.learner.get("eval_mean"), ckpt.network
    if target == "loihi1" and not agent.encoder.binary:
        raise ValueError("target loihi1: the encoder sends graded (8-bit payload) spikes, which "
                         "only Loihi 2 supports; compile with --target loihi2 or use the "
                         "poisson encoder")
    if target == "cpu":
        agent, quant = replace(agent, network=dequantize(float_net)), None
    else:
        agent, quant = quantize_for_target(agent)
    network: NetworkParams = agent.network  # type: ignore[assignment]
    resources = _resources(network, target)
    with atomic_dir(out, replace=True) as tmp:
        files = _write_files(tmp, agent, network, resources)
        if quant is not None:
            atomic_write_json(tmp / "quantization.json", quant)
            files["quantization.json"] = sha256_file(tmp / "quantization.json")
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "target": target,
            "precision": network.precision, "env_id": agent.env_id,
            "steps_per_obs": agent.steps_per_obs, "neurons": network.size,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": {"checkpoint": str(ckpt_path), "sha256": sha256_file(ckpt_path),
                       "eval_mean": eval_mean},
            "files": files,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return out, {"manifest": manifest, "resources": resources, "quantization": quant}


def _resources(network: NetworkParams, target: str) -> dict[str, Any]:
    synapses = int(fan_in(network.w_in).sum() + fan_in(network.w_rec).sum())
    base = {"target": target, "neurons": network.size, "synapses": synapses,
            "input_channels": network.n_inputs, "readout": "host (spike counts per step)"}
    if target == "cpu":
        return base
    return {**base, "placement": placement_for(network, target).summary()}


def _write_files(folder: Path, agent: DeployedAgent, network: NetworkParams,
                 resources: dict[str, Any]) -> dict[str, str]:
    from neuralalchemy.fsio import atomic_write_bytes

    atomic_write_bytes(folder / "network.npz", npz_bytes(network.to_arrays()))
    atomic_write_bytes(folder / "agent.npz", npz_bytes(agent_arrays(agent)))
    atomic_write_json(folder / "resources.json", resources)
    write_nir(agent, folder / "network.nir")
    names = ("network.npz", "agent.npz", "resources.json", "network.nir")
    return {name: sha256_file(folder / name) for name in names}
