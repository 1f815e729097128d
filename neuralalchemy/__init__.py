"""NeuralAlchemy: spiking-reservoir reinforcement-learning agents, from PyTorch to Loihi.

Importing this package is cheap (no torch, Lava or Brian2): the sub-modules load what they need.
"""

__version__ = "0.1.0"
