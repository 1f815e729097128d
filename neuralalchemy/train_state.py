"""Training state: everything a killed ``alchemy train`` needs to continue bit for bit.

``train_state.npz`` sits next to ``checkpoint.npz`` in the run folder while the run is in
progress. It is rewritten atomically (:func:`~neuralalchemy.fsio.atomic_write_bytes`) at the start,
at every periodic evaluation and optionally every few updates, so the file on disk is always the
last complete state; :func:`neuralalchemy.train.resume` continues from it. It loads without
executing code (``numpy.load(allow_pickle=False)``): one JSON string ``meta`` (format version,
config hash, budget, counters, the length of ``metrics.jsonl`` when saved) plus plain numeric
arrays.

A state is a nested tree of dicts, lists, tuples, numbers, strings, ``None``, numpy arrays and
scalars, and torch tensors (learner parameters, optimizer ``state_dict`` s, generator states).
:func:`pack` splits it into a JSON document, in which every array is replaced by a reference
``{"$a": key}`` (``$t`` for a torch tensor, ``$s`` for a numpy scalar), and the arrays themselves;
tuples and dicts with non-string keys are tagged (``$tuple``, ``$items``) so that
:func:`unpack` rebuilds the tree exactly (``torch.optim`` state dicts are keyed by int).

Environments are captured generically (:func:`env_state`): along the chain of wrappers and
vectorised copies, every attribute of each object that is numeric (numbers, arrays, tuples,
lists and dicts of them) and every ``numpy.random.Generator``'s bit-generator state. An
attribute of any other kind (a physics engine's C object, say) raises :class:`EnvStateError`
naming it: such an environment cannot be resumed.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import io
import json
import os
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

from neuralalchemy.config import Config
from neuralalchemy.fsio import atomic_write_bytes, atomic_write_json

STATE_NAME = "train_state.npz"
SUMMARY_NAME = "summary.json"
FORMAT_VERSION = 1
KIND = "neuralalchemy-train-state"


class ResumeError(ValueError):
    """A run cannot be resumed; the message says why."""


class EnvStateError(ResumeError):
    """An environment holds state that a training state cannot capture."""


# ---------------------------------------------------------------- nested state <-> JSON + arrays
def pack(tree: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Split ``tree`` into a JSON-ready document and the arrays it references."""
    arrays: dict[str, np.ndarray] = {}

    def ref(tag: str, value: np.ndarray, path: str) -> dict[str, str]:
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", path)
        while key in arrays:
            key += "~"
        arrays[key] = value
        return {tag: key}

    def enc(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            return ref("$t", x.detach().cpu().numpy(), path)
        if isinstance(x, np.ndarray):
            return ref("$a", x, path)
        if isinstance(x, np.generic):
            return ref("$s", np.asarray(x), path)
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, tuple):
            return {"$tuple": [enc(v, f"{path}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [enc(v, f"{path}.{i}") for i, v in enumerate(x)]
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in x):
                return {k: enc(v, f"{path}.{k}") for k, v in x.items()}
            if not all(isinstance(k, (str, int)) for k in x):
                raise TypeError(f"{path}: dict keys must be str or int")
            return {"$items": [[k, enc(v, f"{path}.{k}")] for k, v in x.items()]}
        raise TypeError(f"{path}: a training state cannot hold a {type(x).__name__}")

    return enc(tree, "state"), arrays


def unpack(doc: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`pack` (arrays are copied, so the result is writeable)."""
    if isinstance(doc, list):
        return [unpack(v, arrays) for v in doc]
    if not isinstance(doc, dict):
        return doc
    if len(doc) == 1:
        (tag, value), = doc.items()
        if tag == "$a":
            return arrays[value].copy()
        if tag == "$t":
            return torch.from_numpy(arrays[value].copy())
        if tag == "$s":
            return arrays[value][()]
        if tag == "$tuple":
            return tuple(unpack(v, arrays) for v in value)
        if tag == "$items":
            return {k: unpack(v, arrays) for k, v in value}
    return {k: unpack(v, arrays) for k, v in doc.items()}


# ---------------------------------------------------------------- generators and tensors
def rng_state(gen: np.random.Generator | None) -> dict[str, Any] | None:
    """The bit-generator state of a numpy generator (JSON-ready), None for None."""
    return None if gen is None else dict(gen.bit_generator.state)


def set_rng_state(gen: np.random.Generator | None, state: dict[str, Any] | None) -> None:
    """Put ``gen`` back into ``state`` (both None, or both set)."""
    if (gen is None) != (state is None):
        raise ResumeError("a random generator of the saved state does not match this run's")
    if gen is not None and state is not None:
        gen.bit_generator.state = state


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Overwrite a (possibly ``requires_grad``) tensor in place with saved values."""
    if dst.shape != src.shape:
        raise ResumeError(f"saved tensor of shape {tuple(src.shape)} does not fit "
                          f"{tuple(dst.shape)}: the run's config changed")
    with torch.no_grad():
        dst.copy_(src)


# ---------------------------------------------------------------- environments
_INNER = ("env", "envs")  # attributes that lead to wrapped / vectorised environments
_STATIC_NAMES = frozenset({"spec", "_cached_spec", "metadata", "_metadata", "_saved_kwargs",
                           "env_fns"})
_STATIC_TYPES: tuple[type, ...] = (gym.Space, gym.envs.registration.EnvSpec, enum.Enum, type,
                                   types.FunctionType, types.BuiltinFunctionType,
                                   types.MethodType, functools.partial)


def _kind(value: Any) -> str:
    """``"data"`` (numbers, strings, arrays and containers of them), ``"rng"``, ``"static"``
    (spaces, specs, functions: rebuilt identically from the env id) or ``"other"``."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
        return "data"
    if isinstance(value, np.random.Generator):
        return "rng"
    if isinstance(value, _STATIC_TYPES):
        return "static"
    if isinstance(value, (list, tuple)):
        kinds = {_kind(v) for v in value}
        return "data" if kinds <= {"data"} else "static" if kinds == {"static"} else "other"
    if isinstance(value, dict):
        keys_ok = all(isinstance(k, (str, int)) for k in value)
        return "data" if keys_ok and {_kind(v) for v in value.values()} <= {"data"} else "other"
    return "other"


def _inner(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _INNER:
        value = vars(obj).get(name)
        if isinstance(value, (gym.Env, gym.vector.VectorEnv)):
            out[name] = value
        elif isinstance(value, list) and value and all(isinstance(e, gym.Env) for e in value):
            out[name] = value
    return out


def env_state(env: Any) -> dict[str, Any]:
    """The state of a (vector) environment and everything it wraps; see the module docstring."""
    values: dict[str, Any] = {}
    rngs: dict[str, Any] = {}
    inner = _inner(env)
    for name, value in vars(env).items():
        if name in inner or name in _STATIC_NAMES:
            continue
        kind = _kind(value)
        if kind == "data":
            values[name] = value
        elif kind == "rng":
            rngs[name] = rng_state(value)
        elif kind == "other":
            raise EnvStateError(
                f"{type(env).__name__}.{name} holds a {type(value).__name__}, which a training "
                "state cannot capture: resume needs environments whose state is numbers, numpy "
                "arrays and numpy generators")
    nested = {k: [env_state(e) for e in v] if isinstance(v, list) else env_state(v)
              for k, v in inner.items()}
    return {"type": type(env).__qualname__, "values": values, "rngs": rngs, "inner": nested}


def load_env_state(env: Any, state: dict[str, Any]) -> None:
    """Put a freshly built environment (same id, same number of copies) into ``state``."""
    if type(env).__qualname__ != state["type"]:
        raise ResumeError(f"saved environment {state['type']} does not match {type(env).__name__}")
    inner = _inner(env)
    for name, value in list(vars(env).items()):  # data the saved env did not have
        if (name not in inner and name not in _STATIC_NAMES and _kind(value) == "data"
                and name not in state["values"]):
            delattr(env, name)
    for name, value in state["values"].items():
        setattr(env, name, value)
    for name, saved in state["rngs"].items():
        gen = vars(env).get(name)
        if not isinstance(gen, np.random.Generator):
            gen = np.random.Generator(getattr(np.random, saved["bit_generator"])())
            setattr(env, name, gen)
        gen.bit_generator.state = saved
    if set(inner) != set(state["inner"]):
        raise ResumeError(f"saved environment {state['type']} wraps different environments")
    for name, saved_inner in state["inner"].items():
        if isinstance(saved_inner, list):
            if len(saved_inner) != len(inner[name]):
                raise ResumeError(f"saved environment has {len(saved_inner)} copies, this run "
                                  f"{len(inner[name])}")
            for e, s in zip(inner[name], saved_inner):
                load_env_state(e, s)
        else:
            load_env_state(inner[name], saved_inner)


# ---------------------------------------------------------------- the file
def config_hash(cfg: Config) -> str:
    """SHA-256 of the resolved config (canonical JSON)."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def save_train_state(path: str | Path, meta: dict[str, Any], tree: Any) -> None:
    """Write ``meta`` (JSON) and ``tree`` (packed) to ``path`` atomically."""
    doc, arrays = pack(tree)
    head = {"format_version": FORMAT_VERSION, "kind": KIND, **meta, "state": doc}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(head)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_train_state(path: str | Path) -> tuple[dict[str, Any], Any]:
    """``(meta, tree)`` of a state file; every failure is a one-line :class:`ResumeError`."""
    path = Path(path)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        head = json.loads(str(arrays.pop("meta")))
    except Exception as exc:  # zip, npz and JSON errors all mean a damaged file
        raise ResumeError(f"{path} is not a readable training state "
                          f"({type(exc).__name__})") from None
    if not isinstance(head, dict) or head.get("kind") != KIND:
        raise ResumeError(f"{path} is not a NeuralAlchemy training state")
    if head.get("format_version") != FORMAT_VERSION:
        raise ResumeError(f"{path} has format version {head.get('format_version')}; this "
                          f"NeuralAlchemy reads version {FORMAT_VERSION}")
    return head, unpack(head.pop("state"), arrays)


# ---------------------------------------------------------------- resuming a run folder
@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder (``.lock``, released by the OS even when the
    process is killed), so that a run is never trained by two processes at once."""
    if not run_dir.is_dir():
        raise ResumeError(f"{run_dir} is not a run folder")
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    with open(run_dir / ".lock", "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResumeError(f"{run_dir} is being trained by another process; wait for it "
                              "to end (or stop it) before resuming") from None
        yield


def read_resumable(run_dir: Path) -> tuple[Config, dict[str, Any], Any]:
    """The run's config and its training state ``(meta, tree)``, or a one-line
    :class:`ResumeError`: no state, a finished run, or a state saved under another config."""
    if not run_dir.is_dir():
        raise ResumeError(f"{run_dir} is not a run folder")
    if (run_dir / SUMMARY_NAME).is_file():
        raise ResumeError(f"{run_dir} has finished (it has {SUMMARY_NAME}): nothing to resume")
    state = run_dir / STATE_NAME
    if not state.is_file():
        raise ResumeError(f"{run_dir} has no {STATE_NAME}: only a run of `alchemy train` "
                          "stopped after its first saved state can resume")
    try:
        cfg = Config.from_dict(yaml.safe_load((run_dir / "config.yaml").read_text("utf-8")))
    except (OSError, yaml.YAMLError, TypeError, AttributeError) as exc:
        raise ResumeError(f"{run_dir}/config.yaml is missing or unreadable "
                          f"({type(exc).__name__})") from None
    meta, tree = load_train_state(state)
    if meta.get("config_hash") != config_hash(cfg):
        raise ResumeError(f"{state} was saved under a different config than "
                          f"{run_dir}/config.yaml: restore that file, or start a new run")
    return cfg, meta, tree


def prepare_resume(run_dir: Path, metrics_name: str, offset: int, meta: dict[str, Any]) -> None:
    """Drop what the killed process wrote after its state: metrics records past ``offset`` and
    temporaries of interrupted atomic writes; note the resumption in ``provenance.json``."""
    for tmp in run_dir.glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
    metrics = run_dir / metrics_name
    if metrics.is_file() and metrics.stat().st_size > offset:
        os.truncate(metrics, offset)
    provenance = run_dir / "provenance.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        data = json.loads(provenance.read_text("utf-8"))
        data.setdefault("resumed", []).append(
            {"iteration": meta["iteration"], "env_steps": meta["env_steps"]})
        atomic_write_json(provenance, data)
