"""Chip profiles: the resource limits of the Intel Loihi targets, each with its public source.

A :class:`ChipProfile` holds the per-core limits that ``neuralalchemy.compile.placement`` packs
neurons against, the size of the largest multi-chip system we target, and the bit widths of the
fixed-point state that the Lava bit-accurate models use.

Every numeric field names its public source in ``ChipProfile.sources``. Intel does not publish
Loihi 2's per-core limits (the lava-loihi compiler that knows them is not public); those figures
are the best public estimate, listed in ``ChipProfile.estimated`` and marked "Estimated" in their
source text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Fields that hold a figure and therefore need a public source.
NUMERIC_FIELDS: tuple[str, ...] = (
    "cores_per_chip",
    "max_chips",
    "neurons_per_core",
    "synapse_bits_per_core",
    "axons_in_per_core",
    "axons_out_per_core",
    "weight_bits",
    "weight_exp_range",
    "max_delay",
    "state_bits",
    "weight_bits_allowed",
)

_POSITIVE_FIELDS: tuple[str, ...] = NUMERIC_FIELDS[:7]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ChipProfile:
    """Resource limits of one neuromorphic chip generation.

    Parameters
    ----------
    name : str
        Canonical lower-case target name, e.g. ``"loihi2"``.
    title : str
        Human-readable name, e.g. ``"Intel Loihi 2"``.
    cores_per_chip : int
        Neurocores per chip (embedded x86 cores not counted).
    max_chips : int
        Chips in the largest system targeted (Kapoho Point for Loihi 2, Pohoiki Springs for Loihi).
    neurons_per_core : int
        Neurons (compartments) one core can hold.
    synapse_bits_per_core : int
        Synaptic memory per core, in bits.
    axons_in_per_core : int
        Input axons per core: distinct source neurons or input channels that can reach it.
    axons_out_per_core : int
        Output axons per core: (source neuron, destination core) routing entries.
    weight_bits : int
        Largest weight mantissa, in bits (signed weights use one of them for the sign).
    weight_exp_range : tuple of int
        Inclusive range ``(lo, hi)`` of the shared base-2 weight exponent.
    max_delay : int
        Largest synaptic delay, in time steps.
    state_bits : dict of str to int
        Bit widths of the fixed-point neuron state and parameters (``u``, ``v``, ``du``, ``dv``,
        ``vth``, ``bias_mant``, ``bias_exp``).
    sources : dict of str to str
        Field name -> public source of its figure; every field of ``NUMERIC_FIELDS`` needs one.
    estimated : frozenset of str
        Fields whose figure is an estimate rather than a published number.
    weight_bits_allowed : tuple of int, optional
        Weight widths the synapse format supports; empty means every width 1..``weight_bits``.

    Raises
    ------
    ValueError
        If a count is not a positive integer, a range is malformed, or a figure has no source.
    """

    name: str
    title: str
    cores_per_chip: int
    max_chips: int
    neurons_per_core: int
    synapse_bits_per_core: int
    axons_in_per_core: int
    axons_out_per_core: int
    weight_bits: int
    weight_exp_range: tuple[int, int]
    max_delay: int
    state_bits: dict[str, int] = field(hash=False)
    sources: dict[str, str] = field(hash=False)
    estimated: frozenset[str] = frozenset()
    weight_bits_allowed: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.lower():
            raise ValueError(f"profile name must be a non-empty lower-case str, got {self.name!r}")
        if not isinstance(self.title, str) or not self.title:
            raise ValueError(f"profile '{self.name}': title must be a non-empty string")
        for key in _POSITIVE_FIELDS:
            value = getattr(self, key)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"profile '{self.name}': {key} must be an int > 0, got {value!r}")
        if not _is_int(self.max_delay) or self.max_delay < 0:
            raise ValueError(f"profile '{self.name}': max_delay must be an int >= 0")
        self._check_weights()
        self._check_state_bits()
        self._check_sources()

    def _check_weights(self) -> None:
        rng = self.weight_exp_range
        if not (isinstance(rng, tuple) and len(rng) == 2 and all(_is_int(x) for x in rng)):
            raise ValueError(f"profile '{self.name}': weight_exp_range must be an int (lo, hi)")
        if rng[0] > rng[1]:
            raise ValueError(f"profile '{self.name}': weight_exp_range {rng} has lo > hi")
        allowed = tuple(self.weight_bits_allowed) or tuple(range(1, self.weight_bits + 1))
        if any(not _is_int(b) or not 1 <= b <= self.weight_bits for b in allowed):
            raise ValueError(
                f"profile '{self.name}': weight_bits_allowed must lie in 1..{self.weight_bits}"
            )
        object.__setattr__(self, "weight_bits_allowed", tuple(sorted(set(allowed))))

    def _check_state_bits(self) -> None:
        bits = dict(self.state_bits)
        for key, value in bits.items():
            if not isinstance(key, str) or not _is_int(value) or value <= 0:
                raise ValueError(
                    f"profile '{self.name}': state_bits[{key!r}] must be a positive int bit width"
                )
        object.__setattr__(self, "state_bits", bits)

    def _check_sources(self) -> None:
        sources = dict(self.sources)
        unknown = sorted(set(sources) - set(NUMERIC_FIELDS))
        if unknown:
            raise ValueError(f"profile '{self.name}': sources for unknown fields {unknown}")
        for key in NUMERIC_FIELDS:
            text = sources.get(key)
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"profile '{self.name}': field '{key}' has no source entry")
        estimated = frozenset(self.estimated)
        if not estimated <= set(NUMERIC_FIELDS):
            bad = sorted(estimated - set(NUMERIC_FIELDS))
            raise ValueError(f"profile '{self.name}': estimated names unknown fields {bad}")
        for key in estimated:
            if "estimate" not in sources[key].lower():
                raise ValueError(
                    f"profile '{self.name}': source of estimated field '{key}' must say so"
                )
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "estimated", estimated)

    def source(self, field: str) -> str:
        """Public source of one field's figure.

        Parameters
        ----------
        field : str
            A name from ``NUMERIC_FIELDS``.

        Returns
        -------
        str
            The source text; estimated figures say "Estimated" in it.

        Raises
        ------
        ValueError
            If ``field`` is not a sourced field.
        """
        if field not in self.sources:
            raise ValueError(
                f"profile '{self.name}' has no field '{field}': choose one of "
                + ", ".join(NUMERIC_FIELDS)
            )
        return self.sources[field]


# --- Public figures --------------------------------------------------------------------------

_NENGO_BLOCK = "nengo-loihi nengo_loihi/block.py"
_NENGO_DISC = "nengo-loihi nengo_loihi/discretize.py"
_BRIAN2LOIHI = "Brian2Loihi loihi_synapses.py (Michaelis et al., Front. Neuroinform. 2022)"
_DAVIES = (
    "Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
    "IEEE Micro 38(1), 2018"
)
_L2_BRIEF = (
    "Intel Labs technology brief 'Taking Neuromorphic Computing to the Next Level with Loihi 2' "
    "(2021; summarised on open-neuromorphic.org)"
)

LOIHI2 = ChipProfile(
    name="loihi2",
    title="Intel Loihi 2",
    cores_per_chip=128,
    max_chips=8,
    neurons_per_core=8192,
    synapse_bits_per_core=1_048_576,
    axons_in_per_core=4096,
    axons_out_per_core=4096,
    weight_bits=8,
    weight_exp_range=(-8, 7),
    max_delay=63,
    state_bits={"u": 24, "v": 24, "du": 12, "dv": 12, "vth": 17, "bias_mant": 13, "bias_exp": 3},
    sources={
        "cores_per_chip": f"128 neurocores plus 6 embedded x86 cores per chip: {_L2_BRIEF}.",
        "max_chips": (
            "8 chips: Kapoho Point, Intel's 8-chip Loihi 2 board (announced with Loihi 2, "
            f"{_L2_BRIEF}). Larger systems exist (Hala Point, 1,152 chips, Intel 2024) but are not "
            "targeted here."
        ),
        "neurons_per_core": (
            "Estimated: 8,192 = up to 1 million neurons per chip / 128 cores "
            f"({_L2_BRIEF}); Intel publishes no per-core figure and the real count depends on "
            "the state size of the neuron program."
        ),
        "synapse_bits_per_core": (
            "Estimated: 1,048,576 bits (128 KiB), Loihi 1's per-core synaptic memory "
            f"({_NENGO_BLOCK} MAX_SYNAPSE_BITS). Loihi 2 partitions core memory flexibly between "
            f"synapses and neuron state and its synaptic share is not public; {_L2_BRIEF} gives "
            "up to 120 million synapses per chip, about 0.94 million minimal-width synapses per "
            "core, in line with ~1 Mbit."
        ),
        "axons_in_per_core": (
            f"Estimated: 4,096, Loihi 1's figure ({_NENGO_BLOCK} MAX_IN_AXONS); Loihi 2's per-core "
            "axon limits are not public (the lava-loihi compiler is closed)."
        ),
        "axons_out_per_core": (
            f"Estimated: 4,096, Loihi 1's figure ({_NENGO_BLOCK} MAX_OUT_AXONS); Loihi 2's "
            "per-core axon limits are not public (the lava-loihi compiler is closed)."
        ),
        "weight_bits": (
            "8-bit weight mantissa: lava src/lava/proc/dense/models.py PyDenseModelBitAcc "
            "(weights precision=8, clipped to 8 bits; num_weight_bits defaults to 8)."
        ),
        "weight_bits_allowed": (
            "Any width 1-8: lava src/lava/proc/dense/process.py num_weight_bits, applied by "
            "truncate_weights in the bit-accurate Dense model."
        ),
        "weight_exp_range": (
            f"Estimated: -8..7 as on Loihi 1 ({_BRIAN2LOIHI}, w_exp check). lava's Dense accepts "
            "any integer weight_exp and shifts the accumulated input by it "
            "(src/lava/proc/dense/models.py); Loihi 2's hardware range is not public."
        ),
        "max_delay": (
            "63 steps: lava src/lava/proc/dense/models.py PyDelayDenseModelBitAcc ('Loihi 2 has "
            "a maximum of 6 bits for delays', delays precision=6, 0 to 63)."
        ),
        "state_bits": (
            "lava src/lava/proc/lif/models.py PyLifModelBitAcc: u, v 24-bit; du, dv unsigned "
            "12-bit; vth unsigned 17-bit (left-shifted by 6); bias_mant signed 13-bit; bias_exp "
            "3-bit."
        ),
    },
    estimated=frozenset(
        {
            "neurons_per_core",
            "synapse_bits_per_core",
            "axons_in_per_core",
            "axons_out_per_core",
            "weight_exp_range",
        }
    ),
)

LOIHI1 = ChipProfile(
    name="loihi1",
    title="Intel Loihi 1",
    cores_per_chip=128,
    max_chips=768,
    neurons_per_core=1024,
    synapse_bits_per_core=1_048_576,
    axons_in_per_core=4096,
    axons_out_per_core=4096,
    weight_bits=8,
    weight_exp_range=(-8, 7),
    max_delay=62,
    state_bits={"u": 24, "v": 24, "du": 12, "dv": 12, "vth": 17, "bias_mant": 13, "bias_exp": 3},
    sources={
        "cores_per_chip": f"128 neuromorphic cores plus 3 embedded x86 cores per chip: {_DAVIES}.",
        "max_chips": (
            "768 chips: Pohoiki Springs, Intel's largest Loihi system (Intel Labs, March 2020; "
            "768 Loihi chips, about 100 million neurons)."
        ),
        "neurons_per_core": f"1,024 compartments: {_NENGO_BLOCK} MAX_COMPARTMENTS; {_DAVIES}.",
        "synapse_bits_per_core": f"1,048,576 bits (128 KiB): {_NENGO_BLOCK} MAX_SYNAPSE_BITS.",
        "axons_in_per_core": f"4,096: {_NENGO_BLOCK} MAX_IN_AXONS.",
        "axons_out_per_core": f"4,096: {_NENGO_BLOCK} MAX_OUT_AXONS.",
        "weight_bits": f"8-bit weight mantissa: {_NENGO_BLOCK} SynapseConfig.WEIGHT_BITS_MAP.",
        "weight_bits_allowed": (
            f"1, 2, 3, 4, 5, 6 or 8 bits: {_NENGO_BLOCK} SynapseConfig.WEIGHT_BITS_MAP "
            "[0, 1, 2, 3, 4, 5, 6, 8]."
        ),
        "weight_exp_range": f"-8..7: {_BRIAN2LOIHI}, w_exp check.",
        "max_delay": f"62 steps: {_BRIAN2LOIHI}, delay check 0..62.",
        "state_bits": (
            f"{_NENGO_DISC}: U_BITS 23 + sign (u 24-bit), vmax up to 2^23 - 1 (v 24-bit, "
            f"{_NENGO_BLOCK} Compartment), decays 12-bit (0..4095), VTH_MAN_MAX 2^17 - 1, "
            "BIAS_MAN_MAX 4095 (13-bit signed), BIAS_EXP_MAX 7 (3-bit)."
        ),
    },
    weight_bits_allowed=(1, 2, 3, 4, 5, 6, 8),
)

#: Canonical target name -> profile.
PROFILES: dict[str, ChipProfile] = {p.name: p for p in (LOIHI2, LOIHI1)}

#: Accepted spellings -> canonical target name. Plain "loihi" means the current generation.
ALIASES: dict[str, str] = {
    "loihi": "loihi2",
    "loihi2": "loihi2",
    "loihi-2": "loihi2",
    "loihi_2": "loihi2",
    "loihi 2": "loihi2",
    "intel loihi 2": "loihi2",
    "loihi1": "loihi1",
    "loihi-1": "loihi1",
    "loihi_1": "loihi1",
    "loihi 1": "loihi1",
    "intel loihi 1": "loihi1",
}


def get_profile(name: str) -> ChipProfile:
    """Look up a chip profile by target name, case-insensitively.

    Parameters
    ----------
    name : str
        A canonical name (``"loihi2"``, ``"loihi1"``) or an alias from ``ALIASES``
        (``"loihi"`` is the current generation, Loihi 2).

    Returns
    -------
    ChipProfile

    Raises
    ------
    ValueError
        ``unknown target 'x': choose one of loihi, loihi1, loihi2`` for an unknown name.
    """
    key = name.strip().lower() if isinstance(name, str) else ""
    canonical = ALIASES.get(key, key)
    if canonical not in PROFILES:
        choices = ", ".join(sorted({"loihi", *PROFILES}))
        raise ValueError(f"unknown target '{name}': choose one of {choices}")
    return PROFILES[canonical]
