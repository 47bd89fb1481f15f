"""Model checkpoints: params plus the config that rebuilds the model, in an orbax directory.

A model config is a frozen dataclass that lives next to the Flax module it configures and knows
how to build it: ``config.build()`` returns the (linen) module, so that

    config, params = jmof.checkpoint.load(path)
    energy = config.build().apply(params, graph)

needs no other input. ``load`` itself only returns the config and the params; it never builds or
runs a model.

The config is stored as JSON: its class as an import path ``"package.module:QualName"`` and its
fields (nested frozen dataclasses, tuples, dicts, str, int, float, bool and None). JSON arrays
come back as tuples, the sequence type a frozen (hashable) config wants.

Layouts that ``load`` reads:

- a model directory written by ``save_model``: orbax items ``params`` and ``config``;
- a training directory written by ``jmof.train.fit``: numbered steps whose items are ``state``
  (a ``TrainState``), ``meta`` (JSON, with the config) and, when there was validation, ``best``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from typing import Any

import orbax.checkpoint as ocp

__all__ = ["save_model", "load"]

_CLASS = "__dataclass__"  # the key that marks an encoded dataclass


def save_model(path: str | os.PathLike, params: Any, config: Any) -> None:
    """Write ``params`` and ``config`` to a new orbax directory at ``path``.

    params: a pytree of arrays (e.g. the ``params`` of a linen ``init``).
    config: a frozen dataclass instance defined at module level (so that ``load`` can import its
      class), or a plain JSON-serialisable dict.

    Raises FileExistsError if ``path`` exists and TypeError if the config cannot be stored.
    The directory appears atomically (orbax writes to a temporary name, then renames).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path):
        raise FileExistsError(f"{path}: already exists; save_model does not overwrite")
    encoded = encode_config(config)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        ckptr.save(
            path,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params), config=ocp.args.JsonSave(encoded)
            ),
        )


def load(path: str | os.PathLike) -> tuple[Any, Any]:
    """Read ``(config, params)`` from a ``save_model`` directory or a ``fit`` ``ckpt_dir``.

    From a training directory the params are those of the latest checkpoint: its ``best`` item
    (lowest validation loss so far) when there was validation, else its EMA params when EMA was
    on, else its raw params. The config is rebuilt by importing its class (None when ``fit`` was
    given no config); params come back as jax arrays in a nested dict.

    Raises FileNotFoundError for a missing path and ValueError for a directory that is not a jmof
    checkpoint or whose config class can no longer be imported or constructed.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    if _has_items(path, "params", "config"):
        with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
            restored = ckptr.restore(
                path,
                args=ocp.args.Composite(
                    params=ocp.args.StandardRestore(), config=ocp.args.JsonRestore()
                ),
            )
        return decode_config(restored.config, where=path), restored.params
    steps = sorted(
        int(name)
        for name in os.listdir(path)
        if name.isdigit() and _has_items(os.path.join(path, name), "state", "meta")
    )
    if not steps:
        raise ValueError(
            f"{path}: not a jmof checkpoint (expected items 'params' and 'config' from "
            "save_model, or numbered steps with 'state' and 'meta' from jmof.train.fit)"
        )
    step_dir = os.path.join(path, str(steps[-1]))
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        meta = ckptr.restore(step_dir, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        item = "best" if meta.get("has_best") else "state"
        restored = ckptr.restore(
            step_dir, args=ocp.args.Composite(**{item: ocp.args.StandardRestore()})
        )[item]
    if item == "state":
        # Without a target the TrainState comes back as a dict of its fields.
        ema = restored.get("ema_params")
        restored = ema if ema is not None else restored["params"]
    return decode_config(meta.get("config"), where=step_dir), restored


def encode_config(config: Any) -> Any:
    """The JSON form of a config (a frozen dataclass or a dict); TypeError names a bad field."""
    encoded = _encode(config, "config")
    try:
        json.dumps(encoded, allow_nan=True)
    except (TypeError, ValueError) as err:  # circular references and the like
        raise TypeError(f"config cannot be stored as JSON: {err}") from err
    return encoded


def decode_config(encoded: Any, *, where: str = "checkpoint") -> Any:
    """Inverse of ``encode_config``: imports dataclasses by their stored path."""
    if isinstance(encoded, dict) and _CLASS in encoded:
        cls = _import_class(encoded[_CLASS], where)
        fields = {k: decode_config(v, where=where) for k, v in encoded.items() if k != _CLASS}
        try:
            return cls(**fields)
        except TypeError as err:
            raise ValueError(
                f"{where}: config class {encoded[_CLASS]} no longer accepts the stored fields "
                f"{sorted(fields)}: {err}"
            ) from err
    if isinstance(encoded, dict):
        return {k: decode_config(v, where=where) for k, v in encoded.items()}
    if isinstance(encoded, list):
        return tuple(decode_config(v, where=where) for v in encoded)
    return encoded


def _encode(value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        if "<locals>" in cls.__qualname__:
            raise TypeError(
                f"{name}: config class {cls.__qualname__} is defined inside a function; "
                "define it at module level so that load() can import it"
            )
        out = {_CLASS: f"{cls.__module__}:{cls.__qualname__}"}
        for field in dataclasses.fields(value):
            if field.init:
                out[field.name] = _encode(getattr(value, field.name), f"{name}.{field.name}")
        return out
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{name}: dict key {key!r} is not a str")
        return {k: _encode(v, f"{name}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"{name} = {value!r} ({type(value).__name__}) cannot be stored as JSON; "
        "use str, int, float, bool, None, tuples, dicts or frozen dataclasses of those"
    )


def _import_class(path: str, where: str) -> type:
    module_name, _, qualname = str(path).partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"{where}: config class {path} cannot be imported ({err}); install or restore the "
            "code that defines it"
        ) from err
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"{where}: {path} is not a dataclass")
    return obj


def _has_items(path: str, *items: str) -> bool:
    return all(os.path.isdir(os.path.join(path, item)) for item in items)
