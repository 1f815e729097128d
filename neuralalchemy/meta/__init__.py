"""Bayesian meta-learning: a learned prior over readouts, adaptation and continual learning."""
