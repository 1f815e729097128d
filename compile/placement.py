"""Placement of neuron populations onto Loihi cores and chips, with a resource table.

Model: neurons of each population are packed greedily, in index order, into cores holding one
population each. A core is closed when its next neuron would exceed a per-core limit of the
:class:`~neuralalchemy.hardware.profiles.ChipProfile`:

* neurons: ``neurons <= neurons_per_core``;
* synaptic memory: ``sum_p sum_i nnz_p[i] * weight_bits_p <= synapse_bits_per_core`` over the
  projections ``p`` onto the core's neurons ``i``. No per-synapse-group overhead is added: the one
  public accounting (nengo-loihi ``SynapseConfig.bits_per_axon``, Loihi 1: a 10-bit header per run
  of up to 64 synapses of one input axon, rounded to 64-bit words) needs each axon's synapses per
  core, which a fan-in vector does not carry, so this figure is a lower bound;
* axons in: ``sum_p min(src_size_p, sum_i nnz_p[i]) <= axons_in_per_core``, an upper bound on the
  distinct sources reaching the core; a ``src`` that is not a population is a host input and uses
  input axons of its destination cores only;
* axons out: one per (source neuron, destination core) pair, as nengo-loihi counts axon slots. A
  neuron of population ``X`` uses ``c_X = sum_q min(K_q, ceil(f_q))`` over projections ``q``
  leaving ``X`` (mean fan-out ``f_q = nnz_q.sum() / src_size_q`` onto ``K_q`` destination cores);
  a core needs ``neurons * c_X <= axons_out_per_core``. ``K_q`` is known once the destination is
  placed, so packing repeats until core counts settle (they only grow; 2-3 rounds in practice).

Cores fill chips in order, ``cores_per_chip`` to a chip. :class:`PlacementError` (a ``ValueError``)
has a one-line message naming the limit exceeded, its figure, and the smallest change that fits.
Each core's end is found for every start index at once with numpy (cumulative sums,
``searchsorted``, a vectorised bisection for axons in): 100k neurons place in well under a second.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neuralalchemy.hardware.profiles import ChipProfile

if TYPE_CHECKING:
    from rich.table import Table

#: Profile fields reported with their sources in :meth:`Placement.summary`.
LIMIT_FIELDS = ("neurons_per_core", "synapse_bits_per_core", "axons_in_per_core",
                "axons_out_per_core", "cores_per_chip", "max_chips", "weight_bits")

#: Usage column key -> (title, CoreUse attribute, profile limit field).
USAGE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "pct_neurons": ("% neurons", "neurons", "neurons_per_core"),
    "pct_synapse_memory": ("% synaptic memory", "synapse_bits", "synapse_bits_per_core"),
    "pct_axons_in": ("% axons in", "axons_in", "axons_in_per_core"),
    "pct_axons_out": ("% axons out", "axons_out", "axons_out_per_core"),
}

_MAX_ROUNDS = 64


class PlacementError(ValueError):
    """The network does not fit the target; the one-line message says what to change."""


def _count(value: object, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _fan_in_array(values: object, name: str, src_size: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"projection '{name}': nnz_per_target must be a non-empty 1-D array")
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr) & (arr == np.round(arr)))
    )
    if not integral or arr.min() < 0 or arr.max() > src_size:
        raise ValueError(f"projection '{name}': nnz_per_target must hold integer fan-in counts "
                         f"in 0..src_size={src_size}")
    out = arr.astype(np.int64)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Population:
    """``size`` neurons (>= 1) placed together in index order under a unique ``name``."""

    name: str
    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"population name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "size", _count(self.size, f"population '{self.name}' size", 1))


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from ``src`` onto population ``dst``, described by their fan-in.

    ``src`` is a population or a host input name; ``nnz_per_target`` (shape ``(dst.size,)``)
    counts the nonzero synapses onto each destination neuron, each in ``0..src_size``, stored as a
    read-only int64 copy (so equality is identity); ``weight_bits`` is bits per stored weight
    (at most ``ChipProfile.weight_bits``); ``src_size`` counts source neurons or input channels.
    """

    name: str
    src: str
    dst: str
    nnz_per_target: np.ndarray
    weight_bits: int
    src_size: int

    def __post_init__(self) -> None:
        for key in ("name", "src", "dst"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValueError(f"projection {self.name!r}: {key} must be a non-empty string")
        wb = _count(self.weight_bits, f"projection '{self.name}' weight_bits", 1)
        src_size = _count(self.src_size, f"projection '{self.name}' src_size", 1)
        object.__setattr__(self, "weight_bits", wb)
        object.__setattr__(self, "src_size", src_size)
        nnz = _fan_in_array(self.nnz_per_target, self.name, src_size)
        object.__setattr__(self, "nnz_per_target", nnz)

    @property
    def n_synapses(self) -> int:
        """Total nonzero synapses."""
        return int(self.nnz_per_target.sum())


@dataclass(frozen=True)
class CoreUse:
    """One core: neurons ``neuron_start:neuron_stop`` of ``population`` on ``chip``, ``core``.

    ``synapse_bits`` is synaptic memory in bits, ``axons_in``/``axons_out`` axon counts, and
    ``synapses`` the incoming synapses.
    """

    chip: int
    core: int
    population: str
    neuron_start: int
    neuron_stop: int
    neurons: int
    synapse_bits: int
    axons_in: int
    axons_out: int
    synapses: int = 0

    def __post_init__(self) -> None:
        for key in ("chip", "core", "neuron_start", "neuron_stop", "neurons", "synapse_bits",
                    "axons_in", "axons_out", "synapses"):
            object.__setattr__(self, key, _count(getattr(self, key), f"CoreUse.{key}"))
        if self.neuron_stop - self.neuron_start != self.neurons:
            raise ValueError("CoreUse: neurons must equal neuron_stop - neuron_start")


@dataclass(frozen=True)
class Placement:
    """The cores a placed network uses on one chip profile."""

    profile: ChipProfile
    cores: tuple[CoreUse, ...]

    def n_cores(self) -> int:
        """Number of cores used."""
        return len(self.cores)

    def n_chips(self) -> int:
        """Number of chips used (cores fill chips in order)."""
        return 1 + max(c.chip for c in self.cores) if self.cores else 0

    def totals(self) -> dict[str, int]:
        """Totals: ``neurons``, ``synapses``, ``synapse_bits``, ``cores``, ``chips``."""
        return {"neurons": sum(c.neurons for c in self.cores),
                "synapses": sum(c.synapses for c in self.cores),
                "synapse_bits": sum(c.synapse_bits for c in self.cores),
                "cores": self.n_cores(), "chips": self.n_chips()}

    def table_rows(self) -> list[dict[str, object]]:
        """Per core: chip, core, population, neurons, and % of each per-core limit used."""
        rows: list[dict[str, object]] = []
        for c in self.cores:
            row: dict[str, object] = {"chip": c.chip, "core": c.core,
                                      "population": c.population, "neurons": c.neurons}
            for key, (_, attr, limit) in USAGE_COLUMNS.items():
                row[key] = 100.0 * getattr(c, attr) / getattr(self.profile, limit)
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable: totals, per-core rows, and the limits used with their sources."""
        p = self.profile
        rows = self.table_rows()
        limits = {f: {"value": getattr(p, f), "source": p.source(f), "estimated": f in p.estimated}
                  for f in LIMIT_FIELDS}
        return {"target": p.name, "title": p.title, "totals": self.totals(),
                "cores": [{**asdict(c), **r} for c, r in zip(self.cores, rows, strict=True)],
                "limits": limits}


# --- Per-population loads ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Load:
    """Per-neuron costs of one population; cumulative sums carry a leading 0."""

    name: str
    size: int
    incoming: tuple[Projection, ...]
    fan: np.ndarray  # (P, size) fan-in per incoming projection
    bits: np.ndarray  # (size,) synapse bits per neuron
    cum_bits: np.ndarray  # (size + 1,)
    cum_fan: np.ndarray  # (P, size + 1)
    src_sizes: np.ndarray  # (P, 1)


def _build_load(pop: Population, projections: Sequence[Projection]) -> _Load:
    incoming = tuple(p for p in projections if p.dst == pop.name)
    fan = np.zeros((len(incoming), pop.size), dtype=np.int64)
    for k, proj in enumerate(incoming):
        fan[k] = proj.nnz_per_target
    bits = np.array([p.weight_bits for p in incoming], dtype=np.int64) @ fan
    cum_fan = np.zeros((len(incoming), pop.size + 1), dtype=np.int64)
    np.cumsum(fan, axis=1, out=cum_fan[:, 1:])
    cum_bits = np.concatenate(([0], np.cumsum(bits)))
    src_sizes = np.array([p.src_size for p in incoming], dtype=np.int64).reshape(-1, 1)
    return _Load(pop.name, pop.size, incoming, fan, bits, cum_bits, cum_fan, src_sizes)


def _axons_in(load: _Load, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Input axons of cores ``[start, stop)``: sum over projections of min(src, fan-in)."""
    fan_in = load.cum_fan[:, stop] - load.cum_fan[:, start]
    return np.minimum(fan_in, load.src_sizes).sum(axis=0)


# --- Checks and their messages -----------------------------------------------------------------


def _floor_sig(x: float, digits: int = 2) -> float:
    """``x`` rounded down to ``digits`` significant digits (0 for x <= 0)."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(x)))
    return math.floor(x * scale) / scale


def _on(profile: ChipProfile, field: str) -> str:
    tag = " (estimated figure)" if field in profile.estimated else ""
    return f"per core on {profile.title}{tag}"


def _fixes(parts: list[tuple[Projection, int]], scale: float, profile: ChipProfile,
           memory: bool) -> str:
    """Connectivity (and, for memory, weight width) that makes one neuron's fan-in fit."""
    conn = [(p, _floor_sig(scale * f / p.src_size)) for p, f in parts]
    text = "reduce connectivity to at most " + (
        f"{conn[0][1]:g}" if len(conn) == 1
        else " and ".join(f"{c:g} for '{p.name}'" for p, c in conn))
    widest = max(p.weight_bits for p, _ in parts)
    fits = [b for b in profile.weight_bits_allowed if b < widest and memory
            and sum(f * min(p.weight_bits, b) for p, f in parts) <= profile.synapse_bits_per_core]
    return text + (f" or weight bits to {max(fits)}" if fits else "")


def _check_neurons(load: _Load, profile: ChipProfile) -> None:
    """Raise if one neuron's fan-in cannot fit an empty core (synaptic memory or axons in)."""
    if not load.incoming:
        return
    fan_in = load.fan.sum(axis=0)
    r_bits = profile.synapse_bits_per_core / np.maximum(load.bits, 1)
    r_in = profile.axons_in_per_core / np.maximum(fan_in, 1)
    i = int(np.argmin(np.minimum(r_bits, r_in)))
    scale = float(min(r_bits[i], r_in[i]))
    if scale >= 1.0:
        return
    parts = [(p, int(f)) for p, f in zip(load.incoming, load.fan[:, i], strict=True) if f > 0]
    head = f"neuron {i} of population '{load.name}' has fan-in {int(fan_in[i])} synapses"
    memory = bool(r_bits[i] <= r_in[i])
    if not memory:
        what = (f"{int(fan_in[i])} axons in > {profile.axons_in_per_core} axons in "
                f"{_on(profile, 'axons_in_per_core')}")
    else:
        head += (f" x {parts[0][0].weight_bits} bits" if len(parts) == 1 else " (" + ", ".join(
            f"{f} x {p.weight_bits} bits from '{p.name}'" for p, f in parts) + ")")
        what = (f"{int(load.bits[i])} bits > {profile.synapse_bits_per_core} bits of synaptic "
                f"memory {_on(profile, 'synapse_bits_per_core')}")
    raise PlacementError(f"{head} = {what}: {_fixes(parts, scale, profile, memory)}")


def _check_network(pops: Sequence[Population], projs: Sequence[Projection],
                   profile: ChipProfile) -> None:
    for kind, names in (("population", [p.name for p in pops]),
                        ("projection", [p.name for p in projs])):
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        if dup:
            raise ValueError(f"duplicate {kind} names: {dup}")
    sizes = {p.name: p.size for p in pops}
    for proj in projs:
        if proj.dst not in sizes:
            raise ValueError(f"projection '{proj.name}': destination '{proj.dst}' is not a "
                             f"population: choose one of {', '.join(sizes)}")
        if len(proj.nnz_per_target) != sizes[proj.dst]:
            raise ValueError(f"projection '{proj.name}': nnz_per_target has "
                             f"{len(proj.nnz_per_target)} entries for {sizes[proj.dst]} neurons")
        if proj.src in sizes and proj.src_size != sizes[proj.src]:
            raise ValueError(f"projection '{proj.name}': src_size {proj.src_size} != size "
                             f"{sizes[proj.src]} of population '{proj.src}'")
        allowed = profile.weight_bits_allowed
        if proj.weight_bits not in allowed:
            best = max((b for b in allowed if b < proj.weight_bits), default=min(allowed))
            raise PlacementError(
                f"projection '{proj.name}' stores {proj.weight_bits}-bit weights but "
                f"{profile.title} stores weights of {', '.join(map(str, allowed))} bits: use "
                f"weight bits {best}")


# --- Packing -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Pack:
    starts: np.ndarray
    stops: np.ndarray
    cap: int  # neurons per core allowed by the neuron and axons-out limits


def _core_ends(load: _Load, cap: int, profile: ChipProfile) -> np.ndarray:
    """For every start index ``s``, the largest ``e`` such that ``[s, e)`` fits one core."""
    s = np.arange(load.size, dtype=np.int64)
    target = load.cum_bits[:-1] + profile.synapse_bits_per_core
    hi = np.minimum(np.minimum(s + cap, load.size),
                    np.searchsorted(load.cum_bits, target, side="right") - 1)
    lo = s + 1  # one neuron always fits: _check_neurons ran first
    while load.incoming:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi + 1) // 2
        ok = _axons_in(load, s, mid) <= profile.axons_in_per_core
        lo, hi = np.where(active & ok, mid, lo), np.where(active & ~ok, mid - 1, hi)
    return hi


def _pack(load: _Load, cap: int, profile: ChipProfile) -> _Pack:
    ends = _core_ends(load, cap, profile).tolist()
    starts: list[int] = []
    s = 0
    while s < load.size:
        starts.append(s)
        s = ends[s]
    first = np.array(starts, dtype=np.int64)
    return _Pack(first, np.append(first[1:], load.size), cap)


def _out_costs(projs: Sequence[Projection], n_cores: dict[str, int],
               profile: ChipProfile) -> dict[str, int]:
    """Output axons per neuron of each population; raise if one neuron needs more than a core."""
    cost = dict.fromkeys(n_cores, 0)
    for proj in projs:
        if proj.src in cost:
            cost[proj.src] += min(n_cores[proj.dst], math.ceil(proj.n_synapses / proj.src_size))
    limit = profile.axons_out_per_core
    for name, c in cost.items():
        if c > limit:
            fixes = " and ".join(
                f"{_floor_sig(limit / c * p.n_synapses / p.src_size / len(p.nnz_per_target)):g}"
                f" for '{p.name}'" for p in projs if p.src == name)
            raise PlacementError(
                f"each neuron of population '{name}' reaches about {c} destination cores = {c} "
                f"axons out > {limit} axons out {_on(profile, 'axons_out_per_core')}: reduce "
                f"connectivity to at most {fixes}")
    return cost


def _pack_all(loads: dict[str, _Load], projs: Sequence[Projection],
              profile: ChipProfile) -> tuple[dict[str, _Pack], dict[str, int]]:
    """Pack every population, repeating until the output-axon costs settle."""
    cost = dict.fromkeys(loads, 0)
    cache: dict[tuple[str, int], _Pack] = {}
    for _ in range(_MAX_ROUNDS):
        packs = {}
        for name, load in loads.items():
            cap = profile.neurons_per_core
            if cost[name]:
                cap = min(cap, profile.axons_out_per_core // cost[name])
            if (name, cap) not in cache:
                cache[name, cap] = _pack(load, cap, profile)
            packs[name] = cache[name, cap]
        new_cost = _out_costs(projs, {n: len(p.starts) for n, p in packs.items()}, profile)
        if new_cost == cost:
            return packs, cost
        cost = new_cost
    raise PlacementError(f"output-axon estimates did not settle in {_MAX_ROUNDS} rounds: "
                         "reduce the fan-out of recurrent projections")


def _binding_limits(load: _Load, pack: _Pack, profile: ChipProfile) -> list[str]:
    """For each full core of the population, the limit that stopped it growing."""
    full = pack.stops < load.size
    s, e = pack.starts[full], pack.stops[full]
    over_bits = load.cum_bits[e + 1] - load.cum_bits[s] > profile.synapse_bits_per_core
    over_in = _axons_in(load, s, e + 1) > profile.axons_in_per_core
    at_cap = "neurons" if pack.cap == profile.neurons_per_core else "axons out"
    return np.where(over_bits, "synaptic memory", np.where(over_in, "axons in", at_cap)).tolist()


def _check_chips(loads: dict[str, _Load], packs: dict[str, _Pack], profile: ChipProfile) -> None:
    n_cores = sum(len(p.starts) for p in packs.values())
    max_cores = profile.max_chips * profile.cores_per_chip
    if n_cores <= max_cores:
        return
    bound = Counter(b for n, ld in loads.items() for b in _binding_limits(ld, packs[n], profile))
    reason = bound.most_common(1)[0][0] if bound else "neurons"
    raise PlacementError(
        f"network needs {math.ceil(n_cores / profile.cores_per_chip)} chips ({n_cores} cores, "
        f"{profile.cores_per_chip} per chip) > {profile.max_chips} chips, the largest "
        f"{profile.title} system targeted; most cores fill up on {reason}: shrink the network "
        f"about {n_cores / max_cores:.1f}x (fewer neurons or a smaller fan-in) to fit "
        f"{max_cores} cores")


def _core_uses(loads: dict[str, _Load], packs: dict[str, _Pack], cost: dict[str, int],
               profile: ChipProfile) -> tuple[CoreUse, ...]:
    cores: list[CoreUse] = []
    for name, load in loads.items():
        s, e = packs[name].starts, packs[name].stops
        columns = (s.tolist(), e.tolist(), (load.cum_bits[e] - load.cum_bits[s]).tolist(),
                   _axons_in(load, s, e).tolist(),
                   (load.cum_fan[:, e] - load.cum_fan[:, s]).sum(axis=0).tolist())
        for start, stop, bits, axons_in, synapses in zip(*columns, strict=True):
            g = len(cores)
            cores.append(CoreUse(
                chip=g // profile.cores_per_chip, core=g % profile.cores_per_chip,
                population=name, neuron_start=start, neuron_stop=stop, neurons=stop - start,
                synapse_bits=bits, axons_in=axons_in, axons_out=(stop - start) * cost[name],
                synapses=synapses))
    return tuple(cores)


def place(populations: Sequence[Population], projections: Sequence[Projection],
          profile: ChipProfile) -> Placement:
    """Place populations onto cores and chips of ``profile`` (model: see the module docstring).

    Parameters
    ----------
    populations : sequence of Population
        Placed in this order, each population's neurons in index order.
    projections : sequence of Projection
        Synapses onto the populations; a ``src`` that is not a population is a host input.
    profile : ChipProfile
        Target chip limits.

    Returns
    -------
    Placement
        Deterministic for the same inputs.

    Raises
    ------
    PlacementError
        If the network exceeds a limit; the message names it and the smallest change that fits.
    ValueError
        If the network is malformed (unknown destination, wrong fan-in length, duplicate names).
    """
    pops, projs = tuple(populations), tuple(projections)
    _check_network(pops, projs, profile)
    loads = {pop.name: _build_load(pop, projs) for pop in pops}
    for load in loads.values():
        _check_neurons(load, profile)
    packs, cost = _pack_all(loads, projs, profile)
    _check_chips(loads, packs, profile)
    return Placement(profile, _core_uses(loads, packs, cost, profile))


def _pct_cell(value: float) -> str:
    text = f"{value:.1f}"
    return f"[red]{text}[/]" if value > 100.0 else f"[yellow]{text}[/]" if value >= 90 else text


def render_table(placement: Placement, max_rows: int | None = None) -> Table:
    """A rich table, one row per core, usage as % of each per-core limit (``*``: estimated).

    Parameters
    ----------
    placement : Placement
        The placement to show.
    max_rows : int, optional
        Show at most this many cores, then one row counting the rest; all when None.
    """
    from rich.table import Table

    p, t = placement.profile, placement.totals()
    table = Table(title=f"{p.title}: {t['neurons']:,} neurons, {t['synapses']:,} synapses "
                        f"on {t['cores']} cores, {t['chips']} chips")
    for header in ("chip", "core", "population", "neurons"):
        table.add_column(header, justify="left" if header == "population" else "right")
    for title, _, limit in USAGE_COLUMNS.values():
        table.add_column(title + ("*" if limit in p.estimated else ""), justify="right")
    cores = placement.cores
    shown = cores if max_rows is None else cores[: max(max_rows, 0)]
    for c in shown:
        table.add_row(str(c.chip), str(c.core), c.population, str(c.neurons), *(
            _pct_cell(100.0 * getattr(c, attr) / getattr(p, limit))
            for _, attr, limit in USAGE_COLUMNS.values()))
    if len(shown) < len(cores):
        table.add_row("...", "", f"{len(cores) - len(shown)} more cores", *[""] * 5)
    if any(limit in p.estimated for _, _, limit in USAGE_COLUMNS.values()):
        table.caption = "* per-core limit is an estimate (see ChipProfile.sources)"
    return table
