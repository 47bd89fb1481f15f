"""The on-disk data cache (``$JMOF_CACHE``, default ``~/.cache/jmof``) and the two things every
long, resumable job needs from it: files that are replaced atomically, and XLA's persistent
compilation cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """Root of jmof's data cache (``$JMOF_CACHE`` if set, else ``~/.cache/jmof``)."""
    root = os.environ.get("JMOF_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "jmof"


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Write ``arrays`` to ``path`` (exactly that name: no ``.npz`` is appended) as an
    uncompressed ``.npz``, atomically: the data go to ``<path>.tmp`` first, which then replaces
    ``path``, so an interruption at any point leaves either the previous file or the new one,
    never a truncated file. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def enable_compilation_cache(min_compile_seconds: float = 0.1) -> Path:
    """Keep XLA's compiled programs on disk under ``cache_root()/jax-compilation``, so that a
    resumed job (the next chunk of a data-set build, a restarted MD run) loads the programs an
    earlier process compiled for the same shapes instead of compiling them again. Programs that
    compiled in under ``min_compile_seconds`` are not stored. Call before the first compile;
    returns the folder. The cache is keyed by the program, the jax version and the device, so
    stale entries are never used. It is not size-bounded (the jobs here bucket their shapes, so
    it holds tens to hundreds of programs); delete the folder to empty it. No LRU bound: JAX's
    eviction needs an access-time file beside each entry, and a process that bounds the cache
    fails to write to a folder that an unbounded process wrote to."""
    import jax

    folder = cache_root() / "jax-compilation"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    return folder
