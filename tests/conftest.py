"""Shared fixtures: PRNG keys, float64 mode, NaN debugging, and CoRE MOF test structures."""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_debug_nans", True)


@pytest.fixture
def keys():
    """An endless supply of independent PRNG keys."""

    def generate(seed: int = 0):
        key = jax.random.key(seed)
        while True:
            key, sub = jax.random.split(key)
            yield sub

    return generate()


@pytest.fixture
def x64():
    """Run the test in float64 (derivatives, parity to 1e-10)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def coremof_cif_dir():
    """Directory of extracted CoRE MOF 2019-ASR CIFs (extracted once into the cache, ~2 s)."""
    from jmof.data import coremof

    return coremof.extract("2019-ASR", progress=False)
