"""The cache helpers of long jobs: atomic ``.npz`` files and XLA's persistent compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jmof.data import save_npz


class _Unwritable:
    """An array-like whose conversion fails: ``np.savez`` raises half-way through a file."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("interrupted")


def test_save_npz_round_trips_under_the_exact_name(tmp_path):
    path = tmp_path / "run" / "restart.state"  # no .npz suffix, folder not there yet
    save_npz(path, step=7, positions=np.arange(6.0).reshape(2, 3), rng='{"state": 1}')
    assert sorted(p.name for p in path.parent.iterdir()) == ["restart.state"]
    with np.load(path) as data:
        assert int(data["step"]) == 7
        np.testing.assert_array_equal(data["positions"], np.arange(6.0).reshape(2, 3))
        assert str(data["rng"]) == '{"state": 1}'


def test_save_npz_keeps_the_previous_file_when_writing_fails(tmp_path):
    path = tmp_path / "restart.npz"
    save_npz(path, step=1, x=np.ones(1000))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"):
        save_npz(path, step=2, x=np.zeros(1000), broken=_Unwritable())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["restart.npz"]  # no temporary left behind


_COMPILE = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from jmof.data import enable_compilation_cache

    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    folder = enable_compilation_cache(min_compile_seconds=0.0)
    f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 3.0)
    f(jnp.ones((8, 8))).block_until_ready()
    hits = events.count("/jax/compilation_cache/cache_hits")
    misses = events.count("/jax/compilation_cache/cache_misses")
    print(hits, misses, folder)
    """
)


def test_compilation_cache_is_written_and_reused_by_a_second_process(tmp_path):
    # In subprocesses: the cache directory is process-wide state of JAX.
    env = dict(os.environ, JMOF_CACHE=str(tmp_path), JAX_PLATFORMS="cpu")

    def compile_once():
        out = subprocess.run([sys.executable, "-c", _COMPILE], env=env, check=True,
                             capture_output=True, text=True)  # fmt: skip
        hits, misses, folder = out.stdout.strip().splitlines()[-1].split(" ", 2)
        assert folder == str(tmp_path / "jax-compilation")
        return int(hits), int(misses), sorted(os.listdir(folder))

    hits, misses, stored = compile_once()
    assert hits == 0 and misses >= 1 and stored, "the compiled programs were not stored"
    compiled = misses
    hits, misses, again = compile_once()
    assert (hits, misses) == (compiled, 0)  # the second process loaded every one of them
    assert again == stored
