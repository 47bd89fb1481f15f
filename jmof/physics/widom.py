"""Widom test-particle insertion: Henry coefficient, interaction energy and heat of adsorption
at infinite dilution, for a rigid framework and a rigid guest.

With W = exp(-βU) the Boltzmann factor of a guest inserted at a uniformly random position and
orientation (U its interaction energy with the framework),

.. math::

    K_H = \\frac{\\langle W \\rangle}{R T \\rho_f}, \\qquad
    \\langle U \\rangle_B = \\frac{\\langle U W \\rangle}{\\langle W \\rangle}, \\qquad
    q_{st}^0 = R T - \\langle U \\rangle_B

(K_H in mol kg⁻¹ Pa⁻¹ with the framework density ρ_f in kg m⁻³; T. J. H. Vlugt, E. García-Pérez,
D. Dubbeldam, S. Ban, S. Calero, J. Chem. Theory Comput. 4, 1107 (2008)). Error bars are the
standard error of the mean over ``n_blocks`` contiguous blocks of insertions (1σ; RASPA prints
a 95 % interval, 2.776σ for 5 blocks).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jmof.physics import forcefield as ffm
from jmof.physics import grid as gridm
from jmof.physics import host as hostm
from jmof.structure import Crystal

R = 8.314462618  # J mol⁻¹ K⁻¹
_AMU_PER_A3_IN_KG_PER_M3 = 1660.5390666  # 1 amu/Å³ in kg/m³


@dataclasses.dataclass(frozen=True)
class HenryResult:
    """Widom insertion estimates at infinite dilution (errors are 1σ block standard errors).

    Attributes:
        guest: guest name.  temperature: K.  method: ``"direct"`` or ``"grid"``.
        n_insertions: number of trial insertions.
        henry: mol kg⁻¹ Pa⁻¹.  henry_err: its standard error.
        boltzmann: ⟨exp(-βU)⟩ (dimensionless; the helium void fraction when the guest is He).
        energy: kJ/mol, Boltzmann-weighted interaction energy ⟨U⟩_B.  energy_err.
        heat: kJ/mol, isosteric heat of adsorption at infinite dilution, RT - ⟨U⟩_B.
        density: kg m⁻³, framework density used for K_H.
    """

    guest: str
    temperature: float
    method: str
    n_insertions: int
    henry: float
    henry_err: float
    boltzmann: float
    boltzmann_err: float
    energy: float
    energy_err: float
    heat: float
    density: float

    @property
    def heat_err(self) -> float:
        return self.energy_err

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "heat_err": self.heat_err}


def framework_density(crystal: Crystal) -> jax.Array:
    """Mass density in kg m⁻³ (differentiable with respect to the cell)."""
    from ase.data import atomic_masses

    mass = float(atomic_masses[np.asarray(crystal.species)].sum())
    volume = jnp.abs(jnp.linalg.det(jnp.asarray(crystal.cell)))
    return mass / volume * _AMU_PER_A3_IN_KG_PER_M3


def block_statistics(
    energies: np.ndarray, temperature: float, n_blocks: int
) -> tuple[float, float, float, float]:
    """⟨W⟩, its standard error, ⟨U⟩_B (K) and its standard error from per-insertion energies.

    Blocks are contiguous; ⟨U⟩_B of a block whose Boltzmann factors are all zero is undefined,
    and such blocks are left out of the energy error.
    """
    u = np.asarray(energies, np.float64)
    if n_blocks < 2 or len(u) < n_blocks:
        raise ValueError(f"need at least 2 blocks and one insertion per block, got {n_blocks}")
    w = np.exp(-np.minimum(u, 700.0 * temperature) / temperature)
    w_mean = w.mean()
    u_mean = float((u * w).sum() / w.sum()) if w.sum() > 0 else float("nan")
    blocks = np.array_split(np.arange(len(u)), n_blocks)
    w_b = np.array([w[b].mean() for b in blocks])
    uw_b = np.array([(u[b] * w[b]).sum() / w[b].sum() for b in blocks if w[b].sum() > 0])
    w_err = w_b.std(ddof=1) / np.sqrt(n_blocks)
    u_err = uw_b.std(ddof=1) / np.sqrt(len(uw_b)) if len(uw_b) > 1 else float("nan")
    return float(w_mean), float(w_err), u_mean, float(u_err)


def insertion_energies(
    crystal: Crystal,
    guest: str | ffm.Guest = "CH4",
    forcefield: str | ffm.ForceField = "UFF",
    *,
    n_insertions: int = 20_000,
    key: jax.Array | None = None,
    grid: gridm.EnergyGrid | None = None,
    cap: float = 1e4,
    charges: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Energies (K) of ``n_insertions`` random trial insertions of the guest.

    Centres are uniform in the cell and orientations uniform on SO(3). With ``grid`` the energy
    of a single-site guest is read from the grid, capped at ``cap`` K, by cubic B-spline
    interpolation instead of summed over the framework. (On a 29 Å MOF, CH4 at 298 K, the cubic
    spline on a 0.3 Å grid gives ⟨W⟩ within 0.1 % of direct summation at the same points;
    trilinear interpolation is 6 % low at 0.3 Å and 3 % low at 0.2 Å.)
    """
    g = ffm.guest(guest)
    key = jax.random.key(0) if key is None else key
    k_pos, k_rot = jax.random.split(key)
    centres = jax.random.uniform(k_pos, (n_insertions, 3), dtype=jnp.result_type(float))
    if grid is not None:
        if not g.is_point:
            raise ValueError(f"grid insertion needs a single-site guest, {g.name} has {g.n_sites}")
        return np.asarray(gridm.interpolate(gridm.capped(grid, cap), centres, order=3))
    h = hostm.host(crystal, ffm.forcefield(forcefield), charges=charges)
    rotations = None if g.is_point else hostm.random_rotations(k_rot, n_insertions)
    return np.asarray(
        hostm.energies(h, g, centres, rotations, progress=progress, description=f"Widom {g.name}")
    )


def henry_coefficient(
    crystal: Crystal,
    guest: str | ffm.Guest = "CH4",
    temperature: float = 298.0,
    forcefield: str | ffm.ForceField = "UFF",
    *,
    method: str = "direct",
    n_insertions: int = 20_000,
    n_blocks: int = 5,
    key: jax.Array | None = None,
    grid: gridm.EnergyGrid | None = None,
    spacing: float = 0.3,
    charges: np.ndarray | None = None,
    progress: bool = False,
) -> HenryResult:
    """Henry coefficient, ⟨U⟩_B and heat of adsorption at infinite dilution by Widom insertion.

    Args:
        crystal: the framework (rigid).
        guest: ``"CH4"``, ``"Kr"``, ``"Xe"``, ``"N2"``, ``"H2"``, ``"CO2"``, ``"He"`` or ``Guest``.
        charges: [n_atoms] e, framework partial charges: the guest's charges (CO2, N2) then
            interact with them by Ewald summation. Without them only Lennard-Jones acts.
        temperature: K.
        forcefield: ``"UFF"``, ``"DREIDING"`` or ``ForceField``.
        method: ``"direct"`` sums over framework atoms at each insertion; ``"grid"`` inserts into
            a precomputed energy grid (``grid``, or one of ``spacing`` Å built here) with cubic
            B-spline interpolation of energies capped at 10⁴ K.
        n_insertions: trial insertions.  n_blocks: blocks for the error bars.
        key: PRNG key (default ``jax.random.key(0)``).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature} K")
    if method not in ("direct", "grid"):
        raise ValueError(f"method must be 'direct' or 'grid', got {method!r}")
    g = ffm.guest(guest)
    ff = ffm.forcefield(forcefield)
    if method == "grid" and charges is not None and g.charged:
        raise ValueError("grid insertion has no electrostatics: use method='direct' with charges")
    if method == "grid" and grid is None:
        grid = gridm.energy_grid(crystal, g, ff, spacing=spacing, progress=progress)
    u = insertion_energies(
        crystal,
        g,
        ff,
        n_insertions=n_insertions,
        key=key,
        grid=grid if method == "grid" else None,
        charges=charges,
        progress=progress,
    )
    return henry_from_energies(g.name, u, temperature, framework_density(crystal), n_blocks, method)


def henry_from_energies(
    name: str,
    energies: np.ndarray,
    temperature: float,
    density: float,
    n_blocks: int = 5,
    method: str = "direct",
) -> HenryResult:
    """Widom estimates from the energies (K) of uniformly random insertions.

    Args:
        name: guest name.  energies: [p] K.  temperature: K.  density: framework, kg m⁻³.
    """
    u = energies
    w, w_err, u_b, u_err = block_statistics(u, temperature, n_blocks)
    rho = float(density)
    scale = 1.0 / (R * temperature * rho) if rho > 0 else float("inf")  # empty box: no mass
    to_kj = ffm.K_IN_KJ_PER_MOL
    return HenryResult(
        guest=name,
        temperature=float(temperature),
        method=method,
        n_insertions=len(u),
        henry=w * scale,
        henry_err=w_err * scale,
        boltzmann=w,
        boltzmann_err=w_err,
        energy=u_b * to_kj,
        energy_err=u_err * to_kj,
        heat=(temperature - u_b) * to_kj,
        density=rho,
    )


def point_insertion_energies(
    crystal: Crystal,
    guests=("CH4", "Kr", "Xe"),
    forcefield: str | ffm.ForceField = "UFF",
    *,
    n_insertions: int = 20_000,
    key: jax.Array | None = None,
    progress: bool = False,
) -> np.ndarray:
    """[n_insertions, n_guests] K: energies of several single-site guests at the same uniformly
    random points (the points ``insertion_energies`` uses for the same key), in one pass over
    the framework."""
    gs = [ffm.guest(g) for g in guests]
    key = jax.random.key(0) if key is None else key
    centres = jax.random.uniform(
        jax.random.split(key)[0], (n_insertions, 3), dtype=jnp.result_type(float)
    )
    h = hostm.host(crystal, ffm.forcefield(forcefield))
    return np.asarray(hostm.point_energies(h, gs, centres, progress=progress))


def henry_coefficients(
    crystal: Crystal,
    guests=("CH4", "Kr", "Xe"),
    temperature: float = 298.0,
    forcefield: str | ffm.ForceField = "UFF",
    *,
    n_insertions: int = 20_000,
    n_blocks: int = 5,
    key: jax.Array | None = None,
    progress: bool = False,
) -> dict[str, HenryResult]:
    """Direct Widom insertion of several single-site guests at the same random points: one pass
    over the framework serves them all (distances are computed once). Results as
    ``henry_coefficient(method="direct")`` for each guest, keyed by guest name."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature} K")
    names = [ffm.guest(g).name for g in guests]
    u = point_insertion_energies(
        crystal, guests, forcefield, n_insertions=n_insertions, key=key, progress=progress
    )
    rho = framework_density(crystal)
    return {
        name: henry_from_energies(name, u[:, k], temperature, rho, n_blocks)
        for k, name in enumerate(names)
    }


def log_henry(
    crystal: Crystal,
    forcefield: ffm.ForceField,
    guest: str | ffm.Guest,
    temperature: float,
    centres: jax.Array,
    rotations: jax.Array | None = None,
    repeats: tuple[int, int, int] | None = None,
    charges: jax.Array | None = None,
) -> jax.Array:
    """ln K_H (K_H in mol kg⁻¹ Pa⁻¹) over fixed insertions, as a differentiable function of the
    crystal (positions, cell) and the force-field parameters.

    The insertion centres are fractional, so a strained cell keeps sampling its own volume
    uniformly. ``repeats`` must be given when the cell is traced.

    Args:
        centres: [p, 3] fractional coordinates.  rotations: [p, 3, 3] (multi-site guests).
    """
    g = ffm.guest(guest)
    h = hostm.host(crystal, forcefield, repeats, charges=charges)
    u = hostm.energies(h, g, centres, rotations)
    log_w = logsumexp(-u / temperature) - jnp.log(u.shape[0])
    return log_w - jnp.log(R * temperature * framework_density(crystal))
