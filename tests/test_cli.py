"""The alchemy command: the user's three commands end to end, and one-line errors (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import TINY, alchemy, assert_one_line_error


def test_unknown_target(tiny_artifact, tmp_path):
    run = next((tiny_artifact.parents[1] / "runs").iterdir())
    assert_one_line_error(alchemy("compile", str(run), "--target", "tpu", cwd=tmp_path),
                          "unknown target 'tpu'")


def test_loihi_backend_explains_what_is_missing(tiny_artifact, tmp_path):
    proc = alchemy("run", str(tiny_artifact), "--backend", "loihi", cwd=tmp_path)
    assert_one_line_error(proc, "lava-loihi")


def test_run_torch_json(tiny_artifact, tmp_path):
    proc = alchemy("run", str(tiny_artifact), "--backend", "torch", "--episodes", "2", "--json",
                   "--compare", "none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["returns"]) == 2 and out["total_spikes"] >= 0
    assert {"mean_return", "ms_per_env_step", "episodes"} <= set(out)


def test_info_lists_backends(tmp_path):
    proc = alchemy("info", cwd=tmp_path)
    assert proc.returncode == 0
    assert "backend sim" in proc.stdout and "backend loihi" in proc.stdout


def test_main_py_is_alchemy_train(tmp_path):
    ini = tmp_path / "config.ini"
    ini.write_text("[reservoir]\nsize = 24\n[training]\neval_episodes = 2\n"
                   "[encoder]\ncalibration_episodes = 2\n")
    main = Path(__file__).resolve().parents[1] / "main.py"
    proc = subprocess.run([sys.executable, str(main), "--env", "CartPole-v1", "--config",
                           str(ini), "--steps", "200", "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = next((tmp_path / "experiments" / "runs").iterdir())
    assert (run / "checkpoint.npz").is_file() and (run / "summary.json").is_file()
    assert "size: 24" in (run / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.lava
def test_the_users_three_commands_in_an_empty_folder(tmp_path):
    """`alchemy train`, `alchemy compile --target loihi`, `alchemy run --backend sim`, nothing
    else: the agent solves CartPole on the Lava simulator, step for step like the torch engine."""
    train = alchemy("train", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    run = next((tmp_path / "experiments" / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["solved"] and summary["eval_mean"] >= 475 and summary["eval_episodes"] == 100
    assert (run / "learning_curve.png").stat().st_size > 0
    assert alchemy("compile", "--target", "loihi", cwd=tmp_path).returncode == 0
    art = next((tmp_path / "experiments" / "artifacts").iterdir())
    assert json.loads((art / "manifest.json").read_text())["target"] == "loihi2"
    proc = alchemy("run", "--backend", "sim", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["backend"] == "sim" and len(out["returns"]) == 10
    assert out["mean_return"] >= 475
    assert out["compare"]["agreement"] >= 0.99


@pytest.mark.lava
def test_crosscheck_torch_and_lava_agree(tiny_artifact, tmp_path):
    proc = alchemy("crosscheck", str(tiny_artifact), "--episodes", "1", "--spike-steps", "60",
                   "--json", "--out", str(tmp_path / "xc"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    sim = out["backends"]["sim"]
    assert sim["agreement"] == 1.0 and sim["spike_agreement"] == 1.0
    assert sim["first_spike_divergence"] is None and sim["van_rossum"] == 0.0
    assert (tmp_path / "xc" / "rasters.png").stat().st_size > 0
    import nir

    saved = nir.read_data(str(tmp_path / "xc" / "spikes.nir"))
    spikes = saved.nodes["sim"].observables["spikes"].data
    assert spikes.shape == (1, 60, 32) and spikes.dtype == bool
    # an impossible threshold makes the command fail with exit code 1
    strict = alchemy("crosscheck", str(tiny_artifact), "--backends", "torch", "--episodes", "1",
                     "--spike-steps", "20", "--min-agreement", "1.01",
                     "--out", str(tmp_path / "xc2"), cwd=tmp_path)
    assert strict.returncode == 1 and "below threshold" in strict.stderr


def test_spike_metrics_detect_a_difference():
    import numpy as np

    from neuralalchemy.sim.crosscheck import failures, spike_metrics

    rng = np.random.default_rng(0)
    a = rng.random((50, 20)) < 0.1
    b = a.copy()
    b[30, 4] = ~b[30, 4]
    m = spike_metrics(a, b)
    assert m["first_spike_divergence"] == 30 and m["spike_agreement"] == 1 - 1 / 1000
    assert m["van_rossum"] > 0 and spike_metrics(a, a)["van_rossum"] == 0
    result = {"backends": {"x": {"agreement": 0.5, **m}}}
    assert len(failures(result, 0.99, 0.9999)) == 2


def test_float_agent_is_quantized_with_a_report(tmp_path):
    assert alchemy("train", "--no-progress", *TINY, "--set", "reservoir.precision=float",
                   cwd=tmp_path).returncode == 0
    proc = alchemy("compile", "--target", "loihi2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "quantized float -> fixed point" in proc.stdout
    art = next((tmp_path / "experiments" / "artifacts").iterdir())
    report = json.loads((art / "quantization.json").read_text())
    assert report["chosen_scale_bits"] in [c["scale_bits"] for c in report["candidates"]]
    assert 0.0 <= report["action_agreement"] <= 1.0
    assert 0.0 <= report["action_agreement_heldout"] <= 1.0 and report["heldout_steps"] > 0
    assert 0.0 <= report["float_sensitivity"]["action_agreement"] <= 1.0
    best = max(c["action_agreement"] for c in report["candidates"])
    assert report["action_agreement"] == best
    assert all(c["action_agreement"] >= c["action_agreement_float_readout"]
               for c in report["candidates"])
    assert json.loads((art / "manifest.json").read_text())["precision"] == "fixed"
    cpu = alchemy("compile", "--target", "cpu", "--out", str(tmp_path / "cpu"), cwd=tmp_path)
    assert cpu.returncode == 0
    assert json.loads((tmp_path / "cpu" / "manifest.json").read_text())["precision"] == "float"


def test_nir_round_trip_runs_like_the_original(tiny_artifact, tmp_path):
    import numpy as np

    from neuralalchemy.compile.artifact import load_artifact
    from neuralalchemy.compile.nir_export import from_nir

    run = next((tiny_artifact.parents[1] / "runs").iterdir())
    cpu = tmp_path / "cpu"
    assert alchemy("compile", str(run), "--target", "cpu", "--out", str(cpu),
                   cwd=tmp_path).returncode == 0
    original, _ = load_artifact(cpu)
    back = from_nir(cpu / "network.nir")
    for name in ("w_in", "w_rec", "bias"):
        np.testing.assert_allclose(getattr(back.network, name), getattr(original.network, name),
                                   rtol=1e-12, atol=1e-12)
    assert (back.network.du, back.network.dv, back.network.vth) == pytest.approx(
        (original.network.du, original.network.dv, original.network.vth))
    imported = tmp_path / "imported"
    proc = alchemy("compile", str(cpu / "network.nir"), "--target", "cpu", "--out",
                   str(imported), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = [json.loads(alchemy("run", str(a), "--backend", "torch", "--episodes", "2", "--json",
                               "--compare", "none", cwd=tmp_path).stdout) for a in (cpu, imported)]
    assert runs[0]["returns"] == runs[1]["returns"]


def test_bad_nir_file_is_one_line_error(tmp_path):
    bad = tmp_path / "model.nir"
    bad.write_bytes(b"not hdf5")
    assert_one_line_error(alchemy("compile", str(bad), "--target", "cpu", cwd=tmp_path),
                          "not a readable NIR graph")


def test_latest_artifact_is_the_last_written_not_the_last_named(tmp_path):
    """Two targets of one run share its name: `alchemy run` takes the one compiled last."""
    import os

    from neuralalchemy.fsio import latest

    for i, name in enumerate(["run-a-loihi2", "run-a-cpu", "run-0-loihi2"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text("{}")
        os.utime(tmp_path / name / "manifest.json", ns=(10**18, 10**18 + i))
    (tmp_path / "run-z-cpu").mkdir()  # no manifest: not an artifact
    assert latest(tmp_path, "manifest.json", by="written").name == "run-0-loihi2"
    os.utime(tmp_path / "run-a-cpu" / "manifest.json", ns=(10**18, 10**18 + 5))
    assert latest(tmp_path, "manifest.json", by="written").name == "run-a-cpu"
    assert latest(tmp_path, "manifest.json").name == "run-a-loihi2"  # runs: by name
    assert latest(tmp_path / "missing", "manifest.json", by="written") is None
