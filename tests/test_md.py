"""jmof.md: JAX-MD integration checked against jmof's own graph path and physical laws
(energy conservation, equipartition, the barostat's pressure), replication of thin cells,
neighbour-list growth, the explosion guard and ASE-readable trajectories."""

from __future__ import annotations

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_md import quantity

from jmof import md
from jmof.graph import batch, radius_graph
from jmof.potential import EV_PER_A3_TO_GPA, LennardJones, energy_forces_stress, sum_potentials
from jmof.structure import Crystal

CUTOFF = 4.5
LJ = LennardJones(cutoff=CUTOFF)
ARGON = {18: (0.0104, 3.40)}
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def argon(a=5.26, repeats=(2, 2, 2), seed=None):
    crystal = Crystal(species=np.full(4, 18), positions=FCC * a, cell=np.eye(3) * a).repeat(repeats)
    if seed is not None:  # rattle
        rng = np.random.default_rng(seed)
        crystal = Crystal(
            crystal.species,
            crystal.positions + rng.normal(0, 0.05, (crystal.n_atoms, 3)),
            crystal.cell,
        )
    return crystal


@pytest.fixture(scope="module")
def params():
    with jax.enable_x64(True):
        return LJ.params(ARGON)


def _reference(crystal, params):
    graph = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, CUTOFF)], n_graph=2))
    return energy_forces_stress(LJ.apply, params, graph)


def test_energy_forces_and_pressure_match_the_graph_path(x64, params):
    crystal = argon(seed=0)
    system = md.system(LJ.apply, params, crystal, cutoff=CUTOFF, skin=0.5)
    assert system.repeats == (1, 1, 1)
    nbrs = system.neighbor_fn.allocate(system.positions)
    energy = system.energy_fn(system.positions, nbrs)
    forces = -jax.grad(system.energy_fn)(system.positions, nbrs)  # Cartesian (JAX-MD's JVP)
    ref = _reference(crystal, params)
    np.testing.assert_allclose(energy, ref.energy[0], rtol=1e-12)
    # positions were wrapped into the cell: forces are per atom, order unchanged
    np.testing.assert_allclose(forces, ref.forces[: crystal.n_atoms], rtol=1e-9, atol=1e-12)
    pressure = quantity.pressure(system.energy_fn, system.positions, system.box, neighbor=nbrs)
    np.testing.assert_allclose(pressure, -np.trace(ref.stress[0]) / 3, rtol=1e-9)
    stress = quantity.stress(system.energy_fn, system.positions, system.box, neighbor=nbrs)
    np.testing.assert_allclose(-stress, ref.stress[0], rtol=1e-9, atol=1e-14)


def test_thin_cells_are_replicated_until_minimum_image_is_exact(x64, params):
    primitive = argon(repeats=(1, 1, 1), seed=1)  # 5.26 Å: thinner than 2 × (4.5 + 0.5)
    system = md.system(LJ.apply, params, primitive, cutoff=CUTOFF, skin=0.5)
    assert system.repeats == (2, 2, 2)
    assert np.all(system.crystal.perpendicular_widths > 2 * (CUTOFF + 0.5))
    nbrs = system.neighbor_fn.allocate(system.positions)
    energy = system.energy_fn(system.positions, nbrs)
    # radius_graph handles the thin cell directly (several images per pair): E(super) = 8 E.
    np.testing.assert_allclose(energy, 8 * _reference(primitive, params).energy[0], rtol=1e-12)


def test_nve_conserves_energy_and_writes_an_ase_trajectory(x64, params, tmp_path):
    system = md.system(LJ.apply, params, argon(seed=2), cutoff=CUTOFF, skin=0.5)
    path = tmp_path / "nve.extxyz"
    result = md.run_nve(
        system,
        steps=400,
        dt_fs=2.0,
        temperature_K=40,
        log_every=20,
        trajectory=path,
        progress=False,
    )
    total = result.log["conserved_eV"]
    kinetic_scale = np.std(result.log["kinetic_eV"])
    assert np.ptp(total) < 0.02 * kinetic_scale + 1e-4, (np.ptp(total), kinetic_scale)
    np.testing.assert_allclose(total, result.log["potential_eV"] + result.log["kinetic_eV"])
    frames = ase.io.read(path, ":")
    assert len(frames) == 3  # steps 0, 200, 400 (every 10 log intervals)
    assert frames[-1].info["step"] == 400
    np.testing.assert_allclose(frames[-1].get_potential_energy(), result.log["potential_eV"][-1])
    np.testing.assert_allclose(
        frames[-1].get_temperature(), result.log["temperature_K"][-1], rtol=1e-6
    )
    # extxyz stores 8 decimals
    np.testing.assert_allclose(frames[-1].positions, result.crystal.positions, atol=1e-7)
    ref = _reference(result.crystal, params)
    np.testing.assert_allclose(
        frames[-1].get_forces(), ref.forces[: result.crystal.n_atoms], atol=1e-7
    )
    np.testing.assert_allclose(
        frames[-1].get_stress(voigt=False), ref.stress[0], rtol=1e-6, atol=1e-10
    )


def test_nve_dimer_follows_the_analytic_lennard_jones_oscillation(x64, params, tmp_path):
    """An argon dimer released at rest from 3.6 Å oscillates in the (shifted) Lennard-Jones
    well: the total energy stays the analytic V(r₀), the potential energy of every frame is
    V of its separation, and the period is the quadrature ∮ dr / v(r)."""
    from scipy.integrate import quad

    epsilon, sigma = ARGON[18]

    def unshifted(r):
        x6 = (sigma / r) ** 6
        return 4 * epsilon * (x6 * x6 - x6)

    def pair(r):  # truncated and shifted at the cutoff, like jmof.potential.LennardJones
        return unshifted(r) - unshifted(CUTOFF)

    r0, box = 3.6, 12.0  # no replica needed: 12 Å > 2 (4.5 + 0.5) Å
    dimer = Crystal(np.full(2, 18), np.array([[4.0, 6, 6], [4.0 + r0, 6, 6]]), np.eye(3) * box)
    system = md.system(LJ.apply, params, dimer, cutoff=CUTOFF, skin=0.5)
    assert system.repeats == (1, 1, 1)
    path = tmp_path / "dimer.extxyz"
    result = md.run_nve(system, steps=3000, dt_fs=2.0, temperature_K=0.0, log_every=10,
                        trajectory=path, traj_every=10, progress=False)  # fmt: skip
    # Energy: released at rest, so E = V(r₀) throughout (velocity Verlet's error is O(dt²)).
    np.testing.assert_allclose(result.log["kinetic_eV"][0], 0.0, atol=1e-15)
    np.testing.assert_allclose(result.log["conserved_eV"], pair(r0), rtol=0, atol=5e-7)
    frames = ase.io.read(path, ":")
    separation = np.array([f.get_distance(0, 1, mic=True) for f in frames])
    energy = np.array([f.get_potential_energy() for f in frames])
    # extxyz keeps 8 decimals of the positions: 1e-8 Å moves V by < 1e-9 eV here.
    np.testing.assert_allclose(energy, pair(separation), rtol=0, atol=1e-9)
    # Turning points: r₀ and the r₁ > r_min with V(r₁) = V(r₀), in (r_min, cutoff).
    x6 = (1 - np.sqrt(1 + unshifted(r0) / epsilon)) / 2  # 4ε(x² − x) = V(r₀), x = (σ/r₁)⁶
    r1 = sigma / x6 ** (1 / 6)
    assert separation.max() == pytest.approx(r1, abs=2e-3) and r1 < CUTOFF
    mu = 39.948 / 2  # reduced mass, amu

    def dt_dtheta(theta):  # r = mid + half sin θ removes the turning-point singularities
        mid, half = (r0 + r1) / 2, (r1 - r0) / 2
        r = mid + half * np.sin(theta)
        speed = np.sqrt(2 * max(pair(r0) - pair(r), 1e-300) / mu)  # Å per JAX-MD time unit
        return half * np.cos(theta) / speed

    period_fs = 2 * quad(dt_dtheta, -np.pi / 2, np.pi / 2, limit=200)[0] * md.TIME_UNIT_FS
    # Measured: the times of the separation's maxima (parabola through each peak's 3 frames).
    times = np.array([f.info["time_fs"] for f in frames])
    r = separation
    peaks = [k for k in range(1, len(r) - 1) if r[k] >= r[k - 1] and r[k] > r[k + 1]]
    refined = []
    for k in peaks:
        a, b, c = r[k - 1 : k + 2]
        refined.append(times[k] + 0.5 * (a - c) / (a - 2 * b + c) * (times[1] - times[0]))
    assert len(refined) >= 3
    np.testing.assert_allclose(np.diff(refined), period_fs, rtol=5e-5)  # measured 7e-6


@pytest.mark.parametrize("thermostat", ["nose-hoover", "langevin"])
def test_nvt_holds_the_temperature(x64, params, thermostat):
    system = md.system(LJ.apply, params, argon(seed=3), cutoff=CUTOFF, skin=0.5)
    result = md.run_nvt(
        system,
        steps=2000,
        dt_fs=4.0,
        temperature_K=50,
        thermostat=thermostat,
        tau_fs=200,
        friction_per_fs=0.01,
        log_every=50,
        progress=False,
    )
    second_half = result.log["temperature_K"][len(result.log["step"]) // 2 :]
    # 32 atoms: single samples scatter by ~T sqrt(2 / 3N) = 12 %; the mean of 20 is within ~5 %.
    assert abs(second_half.mean() - 50) < 6, second_half.mean()
    if thermostat == "nose-hoover":
        drift = np.ptp(result.log["conserved_eV"])
        assert drift < 0.05 * np.ptp(result.log["potential_eV"]), drift


def test_npt_expands_a_compressed_crystal_to_the_target_pressure(x64, params):
    compressed = argon(a=5.0, seed=4)
    system = md.system(LJ.apply, params, compressed, cutoff=CUTOFF, skin=0.8)
    start = _reference(compressed, params)
    assert -np.trace(start.stress[0]) / 3 * EV_PER_A3_TO_GPA > 0.2  # compressed: P > 0.2 GPa
    result = md.run_npt(
        system,
        steps=3000,
        dt_fs=4.0,
        temperature_K=30,
        pressure_GPa=0.0,
        tau_T_fs=200,
        tau_P_fs=800,
        log_every=50,
        progress=False,
    )
    volume = result.log["volume_A3"]
    assert volume[-1] > 1.08 * volume[0]
    late = result.log["pressure_GPa"][-30:]
    assert abs(late.mean()) < 0.05, late.mean()
    np.testing.assert_allclose(result.crystal.volume, volume[-1], rtol=1e-10)


def test_the_model_sees_exactly_the_pairs_within_the_cutoff(x64, params):
    """The energy function evaluates the listed pairs within the cutoff at the positions it
    is given (none missed between updates), in a packed list shorter than JAX-MD's; an
    overflow of either list is reported."""
    # Orthorhombic, replicated to 192 atoms: JAX-MD's own displacement gets this list wrong
    # in float64 (jmof.md._displacement). Compressed so that the second shell (a = 4.55
    # Å) straddles the cutoff.
    compressed = argon(a=4.55, repeats=(2, 2, 3), seed=8)
    system = md.system(LJ.apply, params, compressed, cutoff=CUTOFF, skin=1.0)
    crystal = system.crystal
    assert system.repeats == (2, 2, 1) and crystal.n_atoms == 192
    nbrs = system.neighbor_fn.allocate(system.positions)
    n_pairs = len(radius_graph(crystal, CUTOFF).senders)  # both directions, like JAX-MD's
    assert int(nbrs.count) == n_pairs
    assert nbrs.capacity == int(np.ceil(1.1 * n_pairs)) < nbrs.verlet.idx.shape[1]
    assert not bool(nbrs.did_buffer_overflow)
    grown = system.neighbor_fn.allocate(system.positions, extra_capacity=1000, pair_capacity=3000)
    assert 1000 <= grown.verlet.idx.shape[1] - nbrs.verlet.idx.shape[1] < 1000 + crystal.n_atoms
    assert grown.capacity == 3000
    # Moves of up to 0.12 Å (< skin / 2: no rebuild) take pairs across the cutoff both ways.
    rng = np.random.default_rng(9)
    moved = Crystal(
        crystal.species,
        crystal.positions + rng.uniform(-0.07, 0.07, (crystal.n_atoms, 3)),
        crystal.cell,
    )
    assert len(radius_graph(moved, CUTOFF).senders) != n_pairs
    R = jnp.asarray(np.mod(moved.frac_positions, 1.0))
    updated = system.neighbor_fn.update(R, nbrs)
    assert not bool(updated.did_buffer_overflow)
    np.testing.assert_array_equal(updated.verlet.reference_position, nbrs.verlet.reference_position)
    ref = _reference(moved, params)
    np.testing.assert_allclose(system.energy_fn(R, updated), ref.energy[0], rtol=1e-12)
    forces = -jax.grad(system.energy_fn)(R, updated)
    np.testing.assert_allclose(forces, ref.forces[: moved.n_atoms], rtol=1e-9, atol=1e-12)
    # Too little room for the packed pairs, or a compression JAX-MD's list cannot hold.
    tight = md.system(LJ.apply, params, crystal, cutoff=CUTOFF, skin=1.0, capacity_multiplier=0.9)
    assert tight.repeats == (1, 1, 1)
    small = tight.neighbor_fn.allocate(tight.positions)
    assert bool(small.did_buffer_overflow) and not bool(small.verlet.did_buffer_overflow)
    squeezed = system.neighbor_fn.update(0.5 + 0.8 * (system.positions - 0.5), nbrs)
    assert bool(squeezed.verlet.did_buffer_overflow) and bool(squeezed.did_buffer_overflow)


def test_displacement_is_jax_md_s_without_the_float64_miscompile(x64, params):
    """``System.displacement_fn`` gives JAX-MD's ``periodic_general`` values and derivatives
    (with respect to positions, box and perturbation), and correct distances when vmapped
    over 36,864 gathered pairs in float64, where XLA's CPU fusion of JAX-MD's ``einsum`` with
    the sum of squares has returned wrong ones (jaxlib 0.10.2)."""
    from jax_md import space

    rng = np.random.default_rng(3)
    cell = np.diag([9.1, 9.4, 13.6]) + np.tril(rng.uniform(-1, 1, (3, 3)), -1)
    crystal = Crystal(np.full(4, 18), FCC @ cell, cell)
    system = md.system(LJ.apply, params, crystal, cutoff=CUTOFF)
    box = system.box
    ours = system.displacement_fn
    theirs = space.periodic_general(box, fractional_coordinates=True)[0]
    Ra, Rb = (jnp.asarray(rng.random(3)) for _ in range(2))
    strain = jnp.asarray(np.eye(3) + rng.normal(0, 0.01, (3, 3)))
    new = box * 1.02
    for kwargs in ({}, {"box": new}, {"new_box": new}, {"perturbation": strain},
                   {"perturbation": 1.01}):  # fmt: skip
        np.testing.assert_allclose(ours(Ra, Rb, **kwargs), theirs(Ra, Rb, **kwargs), rtol=1e-13)

    def gradient(displacement, wrt):
        def squared(Ra, box, perturbation):
            return jnp.sum(displacement(Ra, Rb, box=box, perturbation=perturbation) ** 2)

        return jax.grad(squared, argnums=wrt)(Ra, new, strain)

    for wrt in (0, 1, 2):  # positions (a Cartesian gradient), box, perturbation
        np.testing.assert_allclose(gradient(ours, wrt), gradient(theirs, wrt), rtol=1e-12)
    n = 192
    R = jnp.asarray(rng.random((n, 3)))
    i, j = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    d = np.asarray(R)[i] - np.asarray(R)[j]
    expected = np.sum(((d - np.round(d)) @ np.asarray(box).T) ** 2, axis=-1)

    @jax.jit
    def squared_distances(R, i, j):
        return space.map_bond(lambda a, b: space.square_distance(ours(a, b)))(R[i], R[j])

    np.testing.assert_allclose(squared_distances(R, i, j), expected, rtol=1e-12, atol=1e-12)


def test_neighbor_list_grows_when_it_overflows(x64, params):
    system = md.system(
        LJ.apply, params, argon(seed=5), cutoff=CUTOFF, skin=0.2, capacity_multiplier=1.0
    )
    result = md.run_nvt(
        system, steps=400, dt_fs=4.0, temperature_K=150, log_every=20, progress=False
    )
    assert result.neighbor_reallocations >= 1
    ref = _reference(result.crystal, params)
    np.testing.assert_allclose(result.log["potential_eV"][-1], ref.energy[0], rtol=1e-10)


@pytest.mark.parametrize(
    "runner",
    [
        pytest.param("nve", marks=pytest.mark.slow),
        pytest.param("langevin", marks=pytest.mark.slow),  # 24 s; npt restores more state
        "npt",
    ],
)
def test_a_run_continued_from_its_restart_file_is_the_same_run(x64, params, tmp_path, runner):
    """Integrator, thermostat (Langevin's random key too) and barostat state survive a restart;
    the continued trajectory file holds every frame once."""
    system = md.system(LJ.apply, params, argon(seed=5), cutoff=CUTOFF, skin=0.5)

    def run(steps, name, restart=None, **extra):
        path = tmp_path / f"{name}.extxyz"
        kwargs = dict(steps=steps, dt_fs=2.0, temperature_K=40, log_every=10, traj_every=20,
                      trajectory=path, restart=restart, progress=False, **extra)  # fmt: skip
        if runner == "nve":
            return md.run_nve(system, **kwargs)
        if runner == "langevin":
            return md.run_nvt(system, thermostat="langevin", **kwargs)
        return md.run_npt(system, pressure_GPa=0.05, tau_P_fs=200.0, **kwargs)

    whole = run(80, "whole")
    restart = tmp_path / "run.npz"
    # A spent time limit stops at the first trajectory frame; a shorter run stops at its end.
    assert md.restart_steps(restart) == 0
    assert run(80, "parts", restart, time_limit_s=0.0).steps == 20
    assert md.restart_steps(restart) == 20
    half = run(40, "parts", restart)
    assert half.steps == 40 and restart.exists()
    continued = run(80, "parts", restart)
    assert continued.steps == 80
    np.testing.assert_allclose(continued.crystal.positions, whole.crystal.positions, atol=1e-9)
    np.testing.assert_allclose(continued.crystal.cell, whole.crystal.cell, atol=1e-9)
    for key in md.LOG_KEYS:
        np.testing.assert_allclose(continued.log[key], whole.log[key], rtol=1e-9, atol=1e-12)
    steps = [f.info["step"] for f in ase.io.read(tmp_path / "parts.extxyz", ":")]
    assert steps == [f.info["step"] for f in ase.io.read(tmp_path / "whole.extxyz", ":")]
    assert steps == [0, 20, 40, 60, 80]
    # Asking for no more steps than done returns the stored run; another system is refused.
    assert run(60, "parts", restart).steps == 80
    other = md.system(LJ.apply, params, argon(repeats=(2, 2, 3)), cutoff=CUTOFF, skin=0.5)
    with pytest.raises(ValueError, match="another run"):
        md.run_nve(other, steps=10, restart=restart, progress=False)


def test_explosions_stop_with_the_last_good_frame(x64, params, tmp_path):
    crystal = argon(seed=6)
    positions = crystal.positions.copy()
    positions[1] = positions[0] + [1.2, 0, 0]  # far inside the repulsive wall
    crystal = Crystal(crystal.species, positions, crystal.cell)
    system = md.system(LJ.apply, params, crystal, cutoff=CUTOFF, skin=0.5)
    path = tmp_path / "boom.extxyz"
    with pytest.raises(
        md.SimulationError, match="between steps 0 and 10: (temperature|a force)"
    ) as err:
        md.run_nve(system, steps=100, log_every=10, max_force=50.0, trajectory=path, progress=False)
    last = err.value.result.crystal
    np.testing.assert_allclose(last.frac_positions % 1.0, crystal.frac_positions % 1.0, atol=1e-12)
    assert err.value.result.steps == 0
    assert len(ase.io.read(path, ":")) == 2  # step 0 and the last good frame again


def test_a_sum_of_potentials_is_the_sum_of_their_energies(x64, params):
    other = LJ.params({18: (0.0040, 3.1)})
    crystal = argon(seed=3)
    total = sum_potentials(LJ.apply, LJ.apply)
    system = md.system(total, (params, other), crystal, cutoff=CUTOFF, skin=0.5)
    nbrs = system.neighbor_fn.allocate(system.positions)
    parts = [_reference(crystal, p).energy[0] for p in (params, other)]
    np.testing.assert_allclose(system.energy_fn(system.positions, nbrs), sum(parts), rtol=1e-12)
    assert abs(parts[1]) > 1e-3 * abs(parts[0])  # the second term is not negligible
    result = md.run_nve(system, steps=20, dt_fs=1.0, temperature_K=20, log_every=10, progress=False)
    assert np.all(np.isfinite(result.log["conserved_eV"]))


@pytest.mark.slow
def test_any_potential_runs_including_sums(x64, params):
    from potentials.nequip import NequIPConfig

    config = NequIPConfig(
        elements=(18,), cutoff=CUTOFF, n_layers=1, channels=2, l_max=1, dtype="float64"
    )
    crystal = argon(seed=7)
    graph = jax.tree.map(jnp.asarray, batch([radius_graph(crystal, CUTOFF)], n_graph=2))
    nequip = jax.jit(config.build().init)(jax.random.key(0), graph)
    total = sum_potentials(config.build().apply, LJ.apply)
    system = md.system(total, (nequip, params), crystal, cutoff=CUTOFF, skin=0.5)
    nbrs = system.neighbor_fn.allocate(system.positions)
    ref = energy_forces_stress(total, (nequip, params), graph)
    np.testing.assert_allclose(system.energy_fn(system.positions, nbrs), ref.energy[0], rtol=1e-12)
    result = md.run_nve(system, steps=40, dt_fs=1.0, temperature_K=20, log_every=20, progress=False)
    assert np.all(np.isfinite(result.log["conserved_eV"]))


def test_bad_input_is_refused(params):
    slab = Crystal(
        species=np.array([18]),
        positions=np.zeros((1, 3)),
        cell=np.eye(3) * 5,
        pbc=(True, True, False),
    )
    with pytest.raises(ValueError, match="periodic along a, b and c"):
        md.system(LJ.apply, params, slab, cutoff=CUTOFF)
    system = md.system(LJ.apply, params, argon(), cutoff=CUTOFF)
    with pytest.raises(ValueError, match="thermostat"):
        md.run_nvt(system, steps=10, temperature_K=10, thermostat="berendsen")
