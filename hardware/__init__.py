"""Hardware descriptions of the neuromorphic targets (chip profiles with sourced limits)."""

from neuralalchemy.hardware.profiles import ALIASES, PROFILES, ChipProfile, get_profile

__all__ = ["ALIASES", "PROFILES", "ChipProfile", "get_profile"]
