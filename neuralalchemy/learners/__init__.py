"""Readout learners. Each trains the linear readout of a fixed reservoir on an environment."""
