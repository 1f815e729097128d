"""Backends that run a compiled agent in closed loop: torch reference, Lava CPU, Brian2, Loihi."""
