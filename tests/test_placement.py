"""Placement onto Loihi cores: hand-computed cases, error messages, limits as a property."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from neuralalchemy.compile.placement import (
    CoreUse,
    Placement,
    PlacementError,
    Population,
    Projection,
    place,
    render_table,
)
from neuralalchemy.hardware import ALIASES, PROFILES, ChipProfile, get_profile
from neuralalchemy.hardware.profiles import NUMERIC_FIELDS

LOIHI1 = get_profile("loihi1")
LOIHI2 = get_profile("loihi2")
#: A small chip so random networks reach every limit.
TINY = dataclasses.replace(
    LOIHI1, name="tiny", title="tiny test chip", cores_per_chip=4, max_chips=16,
    neurons_per_core=64, synapse_bits_per_core=4096, axons_in_per_core=256, axons_out_per_core=96,
)


def full(n: int, value: int) -> np.ndarray:
    return np.full(n, value, dtype=np.int64)


def connectivity_in(message: str) -> float:
    match = re.search(r"reduce connectivity to at most ([0-9.eE-]+)", message)
    assert match, message
    return float(match.group(1))


# --- Hand-computed cases ----------------------------------------------------------------------


def test_3000_neurons_on_loihi1_fill_three_cores() -> None:
    placement = place([Population("reservoir", 3000)], [], LOIHI1)
    assert [(c.chip, c.core, c.neurons) for c in placement.cores] == [
        (0, 0, 1024), (0, 1, 1024), (0, 2, 952)]
    assert [(c.neuron_start, c.neuron_stop) for c in placement.cores] == [
        (0, 1024), (1024, 2048), (2048, 3000)]
    rows = placement.table_rows()
    assert [r["pct_neurons"] for r in rows] == [100.0, 100.0, pytest.approx(95200 / 1024)]
    assert all(r["pct_synapse_memory"] == 0.0 and r["pct_axons_in"] == 0.0 for r in rows)
    assert placement.totals() == {"neurons": 3000, "synapses": 0, "synapse_bits": 0,
                                  "cores": 3, "chips": 1}


def test_synaptic_memory_bounds_cores() -> None:
    # 200 synapses x 8 bits = 1600 bits per neuron: floor(1048576 / 1600) = 655 neurons per core.
    proj = Projection("in", "u", "r", full(2000, 200), 8, 2000)
    placement = place([Population("r", 2000)], [proj], LOIHI1)
    assert [c.neurons for c in placement.cores] == [655, 655, 655, 35]
    assert placement.cores[0].synapse_bits == 655 * 1600
    assert placement.cores[0].axons_in == 2000  # min(src_size, 655 * 200)
    assert placement.table_rows()[0]["pct_synapse_memory"] == pytest.approx(
        100 * 655 * 1600 / 1048576)
    assert placement.totals()["synapses"] == 2000 * 200


def test_recurrent_and_host_input_usage() -> None:
    projs = [Projection("in", "u", "r", full(2000, 100), 8, 100),
             Projection("rec", "r", "r", full(2000, 10), 8, 2000)]
    placement = place([Population("r", 2000)], projs, LOIHI1)
    first = placement.cores[0]
    assert [c.neurons for c in placement.cores] == [1024, 976]
    assert first.synapse_bits == 1024 * 880  # (100 + 10) synapses x 8 bits
    assert first.axons_in == 100 + 2000  # host channels + min(2000, 1024 * 10)
    assert first.axons_out == 1024 * 2  # each neuron reaches both cores (fan-out 10 > 2 cores)
    row = placement.table_rows()[0]
    assert row["pct_synapse_memory"] == pytest.approx(85.9375)
    assert row["pct_axons_in"] == pytest.approx(100 * 2100 / 4096)
    assert row["pct_axons_out"] == pytest.approx(50.0)


def test_output_axons_shrink_source_cores() -> None:
    # 'a' projects with fan-out 10 onto 'b' (3 cores): 3 axons out per neuron, 2048 // 3 = 682.
    profile = dataclasses.replace(LOIHI1, axons_out_per_core=2048)
    projs = [Projection("ab", "a", "b", full(3000, 10), 8, 3000)]
    placement = place([Population("a", 3000), Population("b", 3000)], projs, profile)
    a_cores = [c for c in placement.cores if c.population == "a"]
    assert [c.neurons for c in a_cores] == [682, 682, 682, 682, 272]
    assert all(c.axons_out == 3 * c.neurons for c in a_cores)


# --- Errors -----------------------------------------------------------------------------------


def test_fan_in_over_synaptic_memory_names_limit_and_a_fix_that_places() -> None:
    profile = dataclasses.replace(LOIHI2, synapse_bits_per_core=65536, axons_in_per_core=10**6)
    nnz = full(100, 1000)
    nnz[17] = 9000
    pops = [Population("reservoir", 100)]
    with pytest.raises(PlacementError) as err:
        place(pops, [Projection("in", "u", "reservoir", nnz, 8, 20000)], profile)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "neuron 17 of population 'reservoir' has fan-in 9000 synapses x 8 bits = 72000 bits > "
        "65536 bits of synaptic memory per core on Intel Loihi 2 (estimated figure): ")
    assert message.endswith("reduce connectivity to at most 0.4 or weight bits to 7")
    fan_in = math.floor(connectivity_in(message) * 20000)
    fixed = place(pops, [Projection("in", "u", "reservoir", full(100, fan_in), 8, 20000)], profile)
    assert fixed.totals()["neurons"] == 100
    place(pops, [Projection("in", "u", "reservoir", nnz, 7, 20000)], profile)


def test_fan_in_over_input_axons_on_loihi1_and_the_fix_places() -> None:
    pops = [Population("reservoir", 1000)]
    with pytest.raises(PlacementError) as err:
        place(pops, [Projection("in", "u", "reservoir", full(1000, 5000), 8, 20000)], LOIHI1)
    message = str(err.value)
    assert "5000 axons in > 4096 axons in per core on Intel Loihi 1: " in message
    fan_in = math.floor(connectivity_in(message) * 20000)
    fixed = place(pops, [Projection("in", "u", "reservoir", full(1000, fan_in), 8, 20000)],
                  LOIHI1)
    assert all(c.axons_in <= 4096 for c in fixed.cores)


def test_several_projections_get_one_fix_each() -> None:
    profile = dataclasses.replace(LOIHI1, synapse_bits_per_core=4000, axons_in_per_core=10**6)
    projs = [Projection("in", "u", "r", full(10, 500), 8, 1000),
             Projection("rec", "r", "r", full(10, 10), 4, 10)]
    with pytest.raises(PlacementError) as err:
        place([Population("r", 10)], projs, profile)
    assert str(err.value) == (
        "neuron 0 of population 'r' has fan-in 510 synapses (500 x 8 bits from 'in', 10 x 4 bits "
        "from 'rec') = 4040 bits > 4000 bits of synaptic memory per core on Intel Loihi 1: "
        "reduce connectivity to at most 0.49 for 'in' and 0.99 for 'rec' or weight bits to 6")


def test_too_many_chips_names_the_count() -> None:
    n = 100_000  # 1% recurrent: 1000 input axons per neuron, 4 neurons per core, 25000 cores
    projs = [Projection("rec", "reservoir", "reservoir", full(n, 1000), 8, n)]
    with pytest.raises(PlacementError) as err:
        place([Population("reservoir", n)], projs, LOIHI2)
    message = str(err.value)
    assert message.startswith("network needs 196 chips (25000 cores, 128 per chip) > 8 chips")
    assert "fill up on axons in" in message and "\n" not in message


def test_too_many_chips_on_plain_neurons() -> None:
    with pytest.raises(PlacementError, match=r"needs 17 chips .* fill up on neurons"):
        place([Population("p", 64 * 4 * 16 + 1)], [], TINY)


def test_output_axons_error_and_weight_bits_errors() -> None:
    profile = dataclasses.replace(LOIHI1, axons_out_per_core=2)
    with pytest.raises(PlacementError, match=r"about 3 destination cores = 3 axons out > 2 "):
        place([Population("a", 3000)], [Projection("rec", "a", "a", full(3000, 10), 8, 3000)],
              profile)
    with pytest.raises(PlacementError, match=r"7-bit weights .* use weight bits 6"):
        place([Population("a", 10)], [Projection("in", "u", "a", full(10, 1), 7, 5)], LOIHI1)
    with pytest.raises(PlacementError, match=r"9-bit weights .* use weight bits 8"):
        place([Population("a", 10)], [Projection("in", "u", "a", full(10, 1), 9, 5)], LOIHI2)


def test_malformed_networks_raise_value_error() -> None:
    with pytest.raises(ValueError, match="0..src_size=5"):
        Projection("in", "u", "a", full(10, 6), 8, 5)
    with pytest.raises(ValueError, match="integer fan-in"):
        Projection("in", "u", "a", np.full(10, 0.5), 8, 5)
    with pytest.raises(ValueError, match="size"):
        Population("a", 0)
    pops = [Population("a", 10)]
    with pytest.raises(ValueError, match="not a population"):
        place(pops, [Projection("in", "u", "b", full(10, 1), 8, 5)], LOIHI2)
    with pytest.raises(ValueError, match="11 entries for 10 neurons"):
        place(pops, [Projection("in", "u", "a", full(11, 1), 8, 5)], LOIHI2)
    with pytest.raises(ValueError, match="duplicate population"):
        place(pops * 2, [], LOIHI2)


# --- Speed, determinism, reporting -------------------------------------------------------------


def test_100k_neurons_at_one_percent_is_fast_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    projs = [Projection("in", "u", "res", rng.binomial(4096, 0.01, n), 8, 4096)]
    t0 = time.perf_counter()
    placement = place([Population("res", n)], projs, LOIHI2)
    assert time.perf_counter() - t0 < 1.0
    assert placement == place([Population("res", n)], projs, LOIHI2)
    t0 = time.perf_counter()
    with pytest.raises(PlacementError):
        place([Population("res", n)], [Projection("rec", "res", "res", full(n, 1000), 8, n)],
              LOIHI2)
    assert time.perf_counter() - t0 < 1.0


def test_summary_is_json_and_carries_sources() -> None:
    projs = [Projection("rec", "r", "r", full(500, 50), 8, 500)]
    summary = place([Population("r", 500)], projs, LOIHI2).summary()
    json.dumps(summary)
    assert summary["totals"]["neurons"] == 500 and summary["target"] == "loihi2"
    assert summary["limits"]["axons_in_per_core"]["estimated"] is True
    assert summary["limits"]["cores_per_chip"]["estimated"] is False
    assert "nengo-loihi" in summary["limits"]["axons_in_per_core"]["source"]
    assert summary["cores"][0]["neuron_stop"] == 500 and "pct_axons_out" in summary["cores"][0]


def test_render_table() -> None:
    from rich.console import Console

    placement = place([Population("reservoir", 3000)], [], LOIHI1)
    table = render_table(placement)
    assert table.row_count == 3
    console = Console(file=io.StringIO(), width=140)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "reservoir" in text and "93.0" in text and "Intel Loihi 1" in text
    assert render_table(placement, max_rows=1).row_count == 2
    assert "*" in render_table(place([Population("r", 5)], [], LOIHI2)).columns[5].header


# --- Property: every placed core respects every limit ------------------------------------------


@st.composite
def networks(draw: st.DrawFn) -> tuple[ChipProfile, list[Population], list[Projection]]:
    profile = draw(st.sampled_from([TINY, TINY, LOIHI1, LOIHI2]))
    pops = [Population(f"p{i}", draw(st.integers(1, 600))) for i in range(draw(st.integers(1, 3)))]
    projs = []
    for k in range(draw(st.integers(0, 4))):
        dst = draw(st.sampled_from(pops))
        if draw(st.booleans()):
            src, src_size = f"host{k}", draw(st.integers(1, 400))
        else:
            src_pop = draw(st.sampled_from(pops))
            src, src_size = src_pop.name, src_pop.size
        top = draw(st.integers(0, src_size))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        nnz = rng.integers(0, top + 1, size=dst.size)
        wb = draw(st.sampled_from(profile.weight_bits_allowed))
        projs.append(Projection(f"proj{k}", src, dst.name, nnz, wb, src_size))
    return profile, pops, projs


def expected_out_cost(pop: str, projs: list[Projection], cores: tuple[CoreUse, ...]) -> int:
    k = {name: sum(c.population == name for c in cores) for name in {c.population for c in cores}}
    return sum(min(k[p.dst], math.ceil(p.n_synapses / p.src_size)) for p in projs if p.src == pop)


def check_core(core: CoreUse, projs: list[Projection], profile: ChipProfile, cost: int,
               pop_size: int) -> None:
    def usage(stop: int) -> tuple[int, int, int]:
        inc = [p for p in projs if p.dst == core.population]
        fan = [int(p.nnz_per_target[core.neuron_start:stop].sum()) for p in inc]
        bits = sum(f * p.weight_bits for f, p in zip(fan, inc, strict=True))
        axons = sum(min(f, p.src_size) for f, p in zip(fan, inc, strict=True))
        return sum(fan), bits, axons

    synapses, bits, axons = usage(core.neuron_stop)
    assert (core.synapses, core.synapse_bits, core.axons_in) == (synapses, bits, axons)
    assert core.axons_out == core.neurons * cost
    assert 1 <= core.neurons <= profile.neurons_per_core
    assert bits <= profile.synapse_bits_per_core and axons <= profile.axons_in_per_core
    assert core.axons_out <= profile.axons_out_per_core
    if core.neuron_stop < pop_size:  # greedy: the next neuron would break a limit
        _, bits1, axons1 = usage(core.neuron_stop + 1)
        n1 = core.neurons + 1
        assert (n1 > profile.neurons_per_core or bits1 > profile.synapse_bits_per_core
                or axons1 > profile.axons_in_per_core or n1 * cost > profile.axons_out_per_core)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_property_placed_cores_respect_every_limit(
    net: tuple[ChipProfile, list[Population], list[Projection]],
) -> None:
    profile, pops, projs = net
    try:
        placement = place(pops, projs, profile)
    except PlacementError as err:
        assert "\n" not in str(err)
        event("does not fit")
        return
    event("placed")
    cores = placement.cores
    assert [c.chip * profile.cores_per_chip + c.core for c in cores] == list(range(len(cores)))
    assert placement.n_chips() <= profile.max_chips
    for pop in pops:
        mine = [c for c in cores if c.population == pop.name]
        assert [c.neuron_start for c in mine] == [0] + [c.neuron_stop for c in mine[:-1]]
        assert mine[-1].neuron_stop == pop.size
        cost = expected_out_cost(pop.name, projs, cores)
        for core in mine:
            check_core(core, projs, profile, cost, pop.size)
    totals = placement.totals()
    assert totals["neurons"] == sum(p.size for p in pops)
    assert totals["synapses"] == sum(p.n_synapses for p in projs)
    assert totals["synapse_bits"] == sum(p.n_synapses * p.weight_bits for p in projs)
    assert (totals["cores"], totals["chips"]) == (len(cores), placement.n_chips())


# --- Profiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("loihi", "loihi2"), ("Loihi", "loihi2"), ("LOIHI-2", "loihi2"), ("loihi_2", "loihi2"),
    ("loihi2", "loihi2"), (" loihi1 ", "loihi1"), ("Loihi_1", "loihi1"), ("loihi-1", "loihi1"),
])
def test_get_profile_aliases(name: str, expected: str) -> None:
    assert get_profile(name).name == expected


def test_unknown_target_message() -> None:
    with pytest.raises(ValueError) as err:
        get_profile("x")
    assert str(err.value) == "unknown target 'x': choose one of loihi, loihi1, loihi2"


def test_every_figure_has_a_source_and_estimates_say_so() -> None:
    assert set(ALIASES.values()) <= set(PROFILES)
    for profile in PROFILES.values():
        for field in NUMERIC_FIELDS:
            assert profile.source(field).strip()
        for field in profile.estimated:
            assert "Estimated" in profile.source(field)
    assert LOIHI1.estimated == frozenset()
    assert {"neurons_per_core", "synapse_bits_per_core", "axons_in_per_core"} <= LOIHI2.estimated
    assert (LOIHI2.max_chips, LOIHI1.max_chips, LOIHI2.max_delay, LOIHI1.max_delay) == (
        8, 768, 63, 62)
    assert LOIHI2.state_bits == {"u": 24, "v": 24, "du": 12, "dv": 12, "vth": 17,
                                 "bias_mant": 13, "bias_exp": 3}
    assert hash(LOIHI2) == hash(get_profile("loihi"))
    with pytest.raises(ValueError, match="has no field .colour."):
        LOIHI2.source("colour")


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="neurons_per_core"):
        dataclasses.replace(LOIHI2, neurons_per_core=0)
    sources = {k: v for k, v in LOIHI2.sources.items() if k != "max_delay"}
    with pytest.raises(ValueError, match="'max_delay' has no source"):
        dataclasses.replace(LOIHI2, sources=sources)
    with pytest.raises(ValueError, match="must say so"):
        dataclasses.replace(LOIHI1, estimated=frozenset({"max_chips"}))
    with pytest.raises(ValueError, match="weight_exp_range"):
        dataclasses.replace(LOIHI1, weight_exp_range=(3, -3))


def test_placement_is_built_from_core_uses() -> None:
    core = CoreUse(0, 0, "p", 0, 3, 3, 24, 3, 0, 3)
    placement = Placement(LOIHI2, (core,))
    assert placement.totals() == {"neurons": 3, "synapses": 3, "synapse_bits": 24, "cores": 1,
                                  "chips": 1}
    with pytest.raises(ValueError, match="neuron_stop - neuron_start"):
        CoreUse(0, 0, "p", 0, 3, 2, 0, 0, 0)
