"""Sphinx configuration of the NeuralAlchemy documentation.

Build: ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``).
The API pages import the installed package (``pip install -e '.[docs]'``); nothing is mocked and
nothing is fetched from the network at build time.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "NeuralAlchemy"
author = "NeuralAlchemy contributors"
copyright = "NeuralAlchemy contributors, MIT License"
release = _version("neuralalchemy")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "alchemy_help",  # docs/_ext/alchemy_help.py: `alchemy ... --help` rendered at build time
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- MyST (Markdown) ---------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
# Anchors for headings up to level 3, so that links such as `artifact.md#manifestjson` resolve.
myst_heading_anchors = 3

# -- autodoc / napoleon ------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# -- HTML --------------------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"NeuralAlchemy {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Spiking-reservoir RL agents, from PyTorch to Loihi",
    "fixed_sidebar": True,
    "show_relbars": True,
}
