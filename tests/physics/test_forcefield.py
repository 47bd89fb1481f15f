"""Force-field tables against independent published conversions, and the LJ pair energy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmof.physics import forcefield as ffm

# (element Z, ε K, σ Å) as listed in GRIDAY's UFF_FF.def (moftransformer 2.2.0 wheel), which
# converted Rappé's table independently and rounds σ to 2-4 decimals.
GRIDAY_UFF = [(30, 62.4, 2.46), (6, 52.84, 3.43), (1, 22.14, 2.57), (8, 30.19, 3.12),
              (29, 2.515, 3.113), (13, 254.092669, 4.0081591), (40, 34.72, 2.78),
              (26, 6.5409994, 2.5943008), (82, 333.5909694, 3.8281973)]  # fmt: skip
# DREIDING as converted in RASPA 2.0.4's forcefield/GenericMOFs (main-group rows).
RASPA_DREIDING = [(8, 48.1581, 3.03315), (7, 38.9492, 3.26256), (6, 47.8562, 3.47299),
                  (1, 7.64893, 2.84642), (17, 142.562, 3.51932),
                  (14, 155.998, 3.80414)]  # fmt: skip


@pytest.mark.parametrize("z, eps, sig", GRIDAY_UFF)
def test_uff_matches_griday_table(z, eps, sig):
    ff = ffm.uff()
    assert float(ff.epsilon[z]) == pytest.approx(eps, rel=2e-3)
    assert float(ff.sigma[z]) == pytest.approx(sig, abs=6e-3)


@pytest.mark.parametrize("z, eps, sig", RASPA_DREIDING)
def test_dreiding_matches_raspa_table(z, eps, sig):
    ff = ffm.dreiding()
    assert float(ff.epsilon[z]) == pytest.approx(eps, rel=1e-4)
    assert float(ff.sigma[z]) == pytest.approx(sig, abs=1e-4)


def test_dreiding_falls_back_to_uff_for_metals():
    uff, dreiding = ffm.uff(), ffm.dreiding()
    assert float(dreiding.epsilon[29]) == float(uff.epsilon[29])  # Cu is not in DREIDING
    assert float(dreiding.epsilon[30]) != float(uff.epsilon[30])  # Zn is


def test_every_element_to_lawrencium_has_uff_parameters():
    ff = ffm.uff()
    ff.check(np.arange(1, 104))
    with pytest.raises(ValueError, match="no parameters for Rf"):
        ff.check([6, 104])


def test_lookup_errors():
    with pytest.raises(ValueError, match="unknown force field"):
        ffm.forcefield("AMBER")
    with pytest.raises(ValueError, match="unknown guest"):
        ffm.guest("SF6")
    assert ffm.guest("co2").name == "CO2"


def test_guest_centre_of_mass_and_charges():
    for g in ffm.GUESTS.values():
        assert abs(g.charges.sum()) < 1e-12, g.name
        assert np.allclose(g.positions.mean(0), 0.0), g.name  # symmetric molecules
    co2 = ffm.guest("CO2")
    assert np.linalg.norm(co2.positions[0] - co2.positions[1]) == pytest.approx(1.16)


def test_lj_minimum_shift_and_gradient(x64):
    eps, sig, rc = 100.0, 3.5, 12.0
    r_min = 2 ** (1 / 6) * sig
    u = ffm.lj_energy(jnp.asarray(r_min**2), eps, sig, rc, shifted=False)
    assert float(u) == pytest.approx(-eps, rel=1e-12)
    du = jax.grad(lambda r: ffm.lj_energy(r * r, eps, sig, rc, False))(jnp.asarray(r_min))
    assert abs(float(du)) < 1e-9
    shifted = ffm.lj_energy(jnp.asarray((rc - 1e-9) ** 2), eps, sig, rc, shifted=True)
    assert abs(float(shifted)) < 1e-9
    beyond = jax.grad(lambda r: ffm.lj_energy(r * r, eps, sig, rc, True))(jnp.asarray(13.0))
    assert float(beyond) == 0.0 and np.isfinite(float(beyond))
