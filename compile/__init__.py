"""Compilation of NeuralAlchemy networks for neuromorphic targets."""
