"""Molecular dynamics with JAX-MD for any jmof potential: NVE, NVT (Nosé–Hoover, Langevin), NPT.

    from jmof import md
    system = md.system(model.apply, params, crystal, cutoff=5.0)        # JAX-MD ready
    result = md.run_nvt(system, steps=10_000, dt_fs=1.0, temperature_K=300,
                        trajectory="nvt.extxyz")
    result.log["temperature_K"], result.crystal                          # log, last frame

A potential is ``apply_fn(params, graph) -> [G]`` eV (our NequIP/MACE, ``jmof.potential``'s
Lennard-Jones, or a ``sum_potentials`` of them). :func:`system` turns it into a JAX-MD energy
function of fractional positions and a sparse JAX-MD neighbour list: the neighbour pairs become
the edges of a :class:`jmof.graph.Graph` whose integer shifts are the minimum images, so the
model sees exactly the graph that ``jmof.graph.radius_graph`` would build. Minimum images are
exact only when every perpendicular width of the cell exceeds ``2 (cutoff + skin)``; thinner
cells are replicated automatically (``system.repeats``).

Units: eV, Å, amu, K at the surface; time in fs. JAX-MD integrates in the matching "metal"
unit of time, ``sqrt(amu Å² / eV) = 10.1805 fs`` (:data:`TIME_UNIT_FS`); momenta are in
``amu Å / 10.1805 fs``. Pressure in GPa, stress in eV/Å³ inside.

Every runner advances in jit-compiled chunks of ``log_every`` steps (``lax.fori_loop``). After
each chunk, on the host: if the neighbour list overflowed, it is reallocated with more room and
the chunk is rerun from its start (so no step ever used an incomplete list); if positions or
energy are not finite, the temperature exceeds ``max_temperature_K`` or a force exceeds
``max_force``, the run stops with :class:`SimulationError`, which names the step and carries the
last good frame (also written to the trajectory). Frames go to an extxyz file that ASE reads
(``ase.io.read(path, ":")``) with energy, forces, stress and velocities. With ``restart=`` a
run keeps its full state (the integrator's state, thermostat and barostat included, the log
and the step) in an ``.npz`` file and continues from it when called again: a long run can be
done in chunks of ``steps`` and survives interruption, giving the same trajectory (to
round-off: the neighbour list is rebuilt on restart).

Each ``run_*`` call traces and compiles its chunk afresh (the integrator is built per call).
With ``jmof.data.enable_compilation_cache()`` called first, XLA's compiled programs are kept
on disk and a later call with the same system and settings (in the same process or a resumed
one) pays only the tracing: for the MACE student on MIL-53(Al) at 304 atoms, 12 s per call
without the cache, 3.3 s with it, and 6 s instead of 15 s for the first call of a new process
(``experiments/bench_md_compile.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import dataclasses as jmd_dataclasses
from jax_md import partition, quantity, simulate, space

from jmof.data.cache import save_npz
from jmof.graph import Graph
from jmof.potential import EV_PER_A3_TO_GPA
from jmof.structure import Crystal

__all__ = [
    "BOLTZMANN_EV_PER_K",
    "TIME_UNIT_FS",
    "MDResult",
    "Neighbors",
    "SimulationError",
    "System",
    "run_npt",
    "run_nve",
    "run_nvt",
    "restart_steps",
    "system",
]

TIME_UNIT_FS = 10.180505671156723
"""The JAX-MD time unit in eV/Å/amu units, ``sqrt(amu Å² / eV)``, in fs."""
BOLTZMANN_EV_PER_K = 8.617333262e-5

LOG_KEYS = (
    "step",
    "time_fs",
    "temperature_K",
    "potential_eV",
    "kinetic_eV",
    "conserved_eV",
    "pressure_GPa",
    "volume_A3",
)


class System(NamedTuple):
    """Everything a JAX-MD simulation of one crystal needs.

    Attributes:
        energy_fn: ``energy_fn(R, neighbor, box=None, perturbation=None) -> eV``, R [N, 3]
          fractional; what ``jax_md.simulate.*`` and ``jax_md.quantity.*`` call.
        neighbor_fn: ``allocate(R, extra_capacity=0, pair_capacity=None, box=None)`` and
          ``update(R, neighbors, box=None)`` of :class:`Neighbors`, like JAX-MD's
          ``NeighborListFns`` (``neighbors.update(R, box=None)`` works too); both capacities
          count pairs.
        displacement_fn, shift_fn: those of ``jax_md.space.periodic_general`` (fractional),
          same keywords and derivatives; the displacement is computed without the ``einsum``
          that XLA miscompiles in float64 for large vmapped pair sets (:func:`_displacement`).
        box: [3, 3] Å, JAX-MD's box: columns are the lattice vectors (``crystal.cell.T``).
        positions: [N, 3] fractional, wrapped into [0, 1).
        masses: [N] amu.
        crystal: the simulated crystal (after replication).
        repeats: (3,) the replication applied to the input crystal.
        cutoff, skin: Å.
        capacity_multiplier: spare room of the pairs within the cutoff (:class:`Neighbors`).
    """

    energy_fn: Callable
    neighbor_fn: partition.NeighborListFns
    displacement_fn: Callable
    shift_fn: Callable
    box: jax.Array
    positions: jax.Array
    masses: jax.Array
    crystal: Crystal
    repeats: tuple[int, int, int]
    cutoff: float
    skin: float
    capacity_multiplier: float


@jmd_dataclasses.dataclass
class Neighbors:
    """A JAX-MD neighbour list, of which the potential only evaluates the pairs within the cutoff.

    JAX-MD's sparse list (``verlet``) holds the pairs within ``cutoff + skin`` and is rebuilt
    only when an atom has moved ``skin / 2``; at 5 + 0.5 Å it lists about 1.3× the pairs within
    the cutoff, plus its spare room. The energy function packs the pairs of that list that are
    within the cutoff *at the positions it is called with* into ``capacity`` edges (same order,
    padding index N), so that a model whose cost is per edge pays only for the edges that
    contribute, and no pair is missed between updates. :meth:`update` counts those pairs, so
    that an overflow of ``capacity`` at the positions of a step is reported by the next update
    (``did_buffer_overflow``), as JAX-MD reports its own.

    Attributes:
        verlet: JAX-MD sparse neighbour list at ``cutoff + skin``.
        count: [] int, the most pairs within the cutoff seen by an update since allocation.
        box: [3, 3] Å, the box of the last update (JAX-MD's: lattice vectors as columns).
        capacity: packed pairs (static).
        cutoff: Å (static).
    """

    verlet: partition.NeighborList
    count: jax.Array
    box: jax.Array
    capacity: int = jmd_dataclasses.static_field()
    cutoff: float = jmd_dataclasses.static_field()

    def update(self, position: jax.Array, **kwargs) -> Neighbors:
        """Update the Verlet list (rebuilt only if needed) and count the pairs within the
        cutoff; ``box=`` as for JAX-MD's ``update`` (NPT)."""
        box = kwargs.get("box", self.box)
        verlet = self.verlet.update(position, **kwargs)
        count = jnp.sum(_within(verlet.idx, position, box, self.cutoff), dtype=jnp.int32)
        return dataclasses.replace(
            self, verlet=verlet, count=jnp.maximum(count, self.count), box=jnp.asarray(box)
        )

    @property
    def did_buffer_overflow(self) -> jax.Array:
        return self.verlet.did_buffer_overflow | (self.count > self.capacity)


def _within(idx: jax.Array, position: jax.Array, box: jax.Array, cutoff: float) -> jax.Array:
    """[E] bool: which pairs of a sparse list (receivers, senders; padding index N) are closer
    than ``cutoff`` Å at fractional ``position`` [N, 3] in ``box``."""
    idx, position, box = (jax.lax.stop_gradient(x) for x in (idx, position, box))
    n = position.shape[0]
    padded = jnp.concatenate([position, jnp.zeros((1, 3), position.dtype)])
    delta = _displacement(box)(padded[idx[0]], padded[idx[1]])
    return (idx[0] < n) & (jnp.sum(delta**2, axis=-1) < cutoff**2)


def _pack(neighbors: Neighbors, position: jax.Array, box: jax.Array) -> jax.Array:
    """[2, capacity] the pairs of ``neighbors.verlet`` within the cutoff at ``position`` in
    ``box``, in their order, padded with N (those beyond ``capacity`` are dropped: the next
    update reports the overflow)."""
    idx = neighbors.verlet.idx
    within = _within(idx, position, box, neighbors.cutoff)
    (where,) = jnp.nonzero(within, size=neighbors.capacity, fill_value=0)
    keep = jnp.arange(neighbors.capacity) < jnp.sum(within)
    return jnp.where(keep, idx[:, where], position.shape[0]).astype(idx.dtype)


@dataclasses.dataclass
class MDResult:
    """A finished (or stopped) run.

    Attributes:
        crystal: the last good frame.
        log: arrays over logged steps, keys :data:`LOG_KEYS` (``conserved_eV`` is the
          integrator's conserved quantity: total energy in NVE, the extended Hamiltonian of the
          Nosé–Hoover chains, NaN for Langevin).
        steps: steps completed.
        neighbor_reallocations: times the neighbour list had to grow.
        trajectory: the extxyz path, if any.
    """

    crystal: Crystal
    log: dict[str, np.ndarray]
    steps: int
    neighbor_reallocations: int
    trajectory: Path | None


class SimulationError(RuntimeError):
    """The run became unphysical; ``result`` holds everything up to the last good frame."""

    def __init__(self, message: str, result: MDResult):
        super().__init__(message)
        self.result = result


def replication(crystal: Crystal, radius: float) -> tuple[int, int, int]:
    """Smallest repeats such that every perpendicular width of the supercell is > 2 radius."""
    widths = crystal.perpendicular_widths
    return tuple(int(math.floor(2 * radius / w)) + 1 for w in widths)


def _graph(species, R, box, idx, perturbation) -> Graph:
    """The padded graph (N real atoms + 1 padding node, 2 graphs) of a sparse neighbour list.

    JAX-MD pads its sparse list with index N, which here is the padding node.
    """
    n = R.shape[0]
    cell = jnp.asarray(box).T
    positions = _to_cartesian(jnp.asarray(box), R)  # gradients come back in Cartesian space
    if perturbation is not None:
        positions = _deform(perturbation, positions)
        cell = _deform(perturbation, cell)  # rows are the lattice vectors
    receivers, senders = idx[0], idx[1]
    edge_mask = receivers < n
    padded = jnp.concatenate([R, jnp.zeros((1, 3), R.dtype)])
    frac_delta = jax.lax.stop_gradient(padded[receivers] - padded[senders])
    shifts = jnp.where(edge_mask[:, None], -jnp.round(frac_delta), 0.0).astype(jnp.int32)
    n_edge = jnp.sum(edge_mask).astype(jnp.int32)
    return Graph(
        species=jnp.concatenate([species, jnp.zeros(1, species.dtype)]),
        positions=jnp.concatenate([positions, jnp.zeros((1, 3), R.dtype)]),
        cell=jnp.stack([cell, jnp.eye(3, dtype=R.dtype)]),
        senders=senders,
        receivers=receivers,
        shifts=shifts,
        node_graph=jnp.concatenate([jnp.zeros(n, jnp.int32), jnp.ones(1, jnp.int32)]),
        n_node=jnp.array([n, 1], jnp.int32),
        n_edge=jnp.stack([n_edge, idx.shape[1] - n_edge]),
        node_mask=jnp.arange(n + 1) < n,
        edge_mask=edge_mask,
        graph_mask=jnp.array([True, False]),
    )


def _matvec(matrix: jax.Array, v: jax.Array) -> jax.Array:
    """``matrix`` [3, 3] times each vector of ``v`` [..., 3], as a sum of three products (see
    :func:`_displacement` for why not ``einsum``)."""
    return v[..., 0:1] * matrix[:, 0] + v[..., 1:2] * matrix[:, 1] + v[..., 2:3] * matrix[:, 2]


def _deform(perturbation, v: jax.Array) -> jax.Array:
    """``P v`` for each vector of ``v`` [..., 3]: JAX-MD's deformation ``perturbation``, a scalar
    or [3, 3] (ordinary derivatives, like JAX-MD's ``raw_transform``)."""
    deform = jnp.asarray(perturbation, v.dtype)
    return v * deform if deform.ndim == 0 else _matvec(deform, v)


@jax.custom_jvp
def _to_cartesian(box: jax.Array, d: jax.Array) -> jax.Array:
    """[..., 3] Å of fractional ``d`` [..., 3] in ``box`` [3, 3] (lattice vectors as columns).
    Like ``jax_md.space.transform``, its derivative with respect to ``d`` passes through
    unchanged, so that gradients with respect to fractional positions come back in Cartesian
    space (JAX-MD's convention)."""
    return _matvec(box, d)


@_to_cartesian.defjvp
def _to_cartesian_jvp(primals, tangents):
    (box, d), (dbox, dd) = primals, tangents
    return _to_cartesian(box, d), dd + _matvec(dbox, d)


def _displacement(box: jax.Array) -> Callable:
    """The minimum-image displacement of ``space.periodic_general(box,
    fractional_coordinates=True)``: ``displacement_fn(Ra, Rb, perturbation=None, box=...,
    new_box=...)`` of fractional positions [3], in Å, with the same keywords and derivatives
    (``box``: [3, 3] with lattice vectors as columns; ``perturbation``: a scalar or [3, 3]
    deformation applied to the result). The box is applied as a sum of three products instead
    of JAX-MD's ``einsum``: under ``jit`` in float64, XLA on the CPU (jaxlib 0.10.2) returns
    wrong squared norms when a matrix-vector product and the sum of its squares are vmapped
    together over gathered positions and more than 16,384 pairs, which is what JAX-MD's
    neighbour-list search (and ``space.map_bond(space.distance(...))`` in user code) does:
    for an orthorhombic argon crystal of 192 atoms its list missed 1,213 of 2,304 pairs
    (``tests/test_md.py``)."""

    def displacement_fn(Ra, Rb, perturbation=None, **kwargs):
        lattice = jnp.asarray(kwargs.get("new_box", kwargs.get("box", box)))
        if lattice.shape != (3, 3):
            raise ValueError(f"jmof.md boxes are [3, 3] matrices, got shape {lattice.shape}")
        d = Ra - Rb
        dR = _to_cartesian(lattice, d - jnp.round(d))
        return dR if perturbation is None else _deform(perturbation, dR)

    return displacement_fn


def system(
    apply_fn: Callable,
    params,
    crystal: Crystal,
    *,
    cutoff: float,
    skin: float = 0.5,
    capacity_multiplier: float = 1.1,
    dtype=None,
) -> System:
    """Prepare ``crystal`` for JAX-MD with the potential ``apply_fn(params, graph) -> [G]``.

    Args:
        apply_fn, params: the potential.
        crystal: periodic in all three directions.
        cutoff: Å, the potential's graph cutoff.
        skin: Å, extra radius of the neighbour list; it is rebuilt once an atom has moved
          ``skin / 2``. The model only sees the pairs within ``cutoff`` (packed at every
          step, :class:`Neighbors`), so the skin costs a distance test per listed pair and
          step, and a thinner one more frequent rebuilds (a pair search inside the compiled
          step, run only when an atom has moved far enough).
        capacity_multiplier: spare room of the pairs within the cutoff, which the model
          evaluates (:class:`Neighbors`; the list grows when exceeded). JAX-MD's list at
          ``cutoff + skin`` keeps its own 1.25.
        dtype: of positions and box; default float64 if enabled, else float32.
    """
    if not all(crystal.pbc):
        raise ValueError("jmof.md simulates crystals periodic along a, b and c")
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    repeats = replication(crystal, cutoff + skin)
    big = crystal.repeat(repeats) if repeats != (1, 1, 1) else crystal
    box = jnp.asarray(np.asarray(big.cell).T, dtype)
    frac = np.mod(big.frac_positions, 1.0)
    species = jnp.asarray(big.species, jnp.int32)
    shift_fn = space.periodic_general(box, fractional_coordinates=True)[1]
    displacement_fn = _displacement(box)
    n_atoms = big.n_atoms
    verlet_fn = partition.neighbor_list(
        displacement_fn,
        box,
        r_cutoff=cutoff,
        dr_threshold=skin,
        capacity_multiplier=1.25,
        fractional_coordinates=True,
        format=partition.Sparse,
        disable_cell_list=n_atoms < 2048,
    )

    def allocate(R, extra_capacity=0, pair_capacity=None, **kwargs) -> Neighbors:
        """``extra_capacity``: pairs of room added to JAX-MD's list (which counts the extra of
        a sparse list per atom); ``pair_capacity``: at least this many packed pairs (default:
        ``capacity_multiplier`` × those within the cutoff at ``R``)."""
        now = jnp.asarray(kwargs.get("box", box))
        per_atom = math.ceil(extra_capacity / n_atoms)
        verlet = verlet_fn.allocate(R, extra_capacity=per_atom, **kwargs)
        count = jnp.sum(_within(verlet.idx, R, now, cutoff), dtype=jnp.int32)
        capacity = max(math.ceil(capacity_multiplier * int(count)), pair_capacity or 0, 1)
        return Neighbors(verlet, count, now, capacity, float(cutoff))

    def update(R, neighbors, **kwargs) -> Neighbors:
        return neighbors.update(R, **kwargs)

    def energy_fn(R, neighbor, box=box, perturbation=None, **unused):
        del unused
        graph = _graph(species, R, box, _pack(neighbor, R, box), perturbation)
        return apply_fn(params, graph)[0]

    return System(
        energy_fn=energy_fn,
        neighbor_fn=partition.NeighborListFns(allocate, update),
        displacement_fn=displacement_fn,
        shift_fn=shift_fn,
        box=box,
        positions=jnp.asarray(frac, dtype),
        masses=jnp.asarray(big.masses, dtype),
        crystal=big,
        repeats=repeats,
        cutoff=float(cutoff),
        skin=float(skin),
        capacity_multiplier=float(capacity_multiplier),
    )


# --- runners ---------------------------------------------------------------------------------


def run_nve(
    system: System, *, steps: int, dt_fs: float = 1.0, temperature_K: float = 300.0, **kwargs
) -> MDResult:
    """Velocity Verlet, velocities drawn at ``temperature_K``. See :func:`_run` for ``kwargs``
    (``seed``, ``log_every``, ``trajectory``, ``traj_every``, guards, ``progress``)."""
    dt = dt_fs / TIME_UNIT_FS
    init, apply = simulate.nve(system.energy_fn, system.shift_fn, dt)

    def conserved(state, nbrs, box):
        ke = quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
        return system.energy_fn(state.position, nbrs, box=box) + ke

    return _run(system, init, apply, conserved, steps, dt_fs, temperature_K, **kwargs)


def run_nvt(
    system: System,
    *,
    steps: int,
    temperature_K: float,
    dt_fs: float = 1.0,
    thermostat: str = "nose-hoover",
    tau_fs: float = 100.0,
    friction_per_fs: float = 0.01,
    **kwargs,
) -> MDResult:
    """Canonical ensemble: Nosé–Hoover chains (relaxation time ``tau_fs``) or Langevin
    (``friction_per_fs``, BAOAB as in JAX-MD)."""
    dt = dt_fs / TIME_UNIT_FS
    kT = BOLTZMANN_EV_PER_K * temperature_K
    if thermostat == "nose-hoover":
        init, apply = simulate.nvt_nose_hoover(
            system.energy_fn, system.shift_fn, dt, kT, tau=tau_fs / TIME_UNIT_FS
        )

        def conserved(state, nbrs, box):
            return simulate.nvt_nose_hoover_invariant(system.energy_fn, state, kT, neighbor=nbrs)

    elif thermostat == "langevin":
        init, apply = simulate.nvt_langevin(
            system.energy_fn, system.shift_fn, dt, kT, gamma=friction_per_fs * TIME_UNIT_FS
        )

        conserved = None  # Langevin dynamics conserves nothing

    else:
        raise ValueError(f"thermostat must be 'nose-hoover' or 'langevin', got {thermostat!r}")
    return _run(system, init, apply, conserved, steps, dt_fs, temperature_K, **kwargs)


def run_npt(
    system: System,
    *,
    steps: int,
    temperature_K: float,
    pressure_GPa: float = 0.0,
    dt_fs: float = 1.0,
    tau_T_fs: float = 100.0,
    tau_P_fs: float = 1000.0,
    **kwargs,
) -> MDResult:
    """Isothermal–isobaric ensemble: JAX-MD's Nosé–Hoover NPT (Martyna–Tobias–Klein), isotropic
    cell fluctuations (the cell shape is kept, its volume changes)."""
    dt = dt_fs / TIME_UNIT_FS
    kT = BOLTZMANN_EV_PER_K * temperature_K
    pressure = pressure_GPa / EV_PER_A3_TO_GPA
    init, apply = simulate.npt_nose_hoover(
        system.energy_fn,
        system.shift_fn,
        dt,
        pressure,
        kT,
        barostat_kwargs=dict(tau=tau_P_fs / TIME_UNIT_FS),
        thermostat_kwargs=dict(tau=tau_T_fs / TIME_UNIT_FS),
    )

    def conserved(state, nbrs, box):
        return simulate.npt_nose_hoover_invariant(
            system.energy_fn, state, pressure, kT, neighbor=nbrs
        )

    return _run(system, init, apply, conserved, steps, dt_fs, temperature_K, npt=True, **kwargs)


def _box_of(state, system: System, npt: bool):
    return simulate.npt_box(state) if npt else system.box


def _crystal(system: System, state, box) -> Crystal:
    """Host copy of the positions and cell of one frame."""
    cell = np.asarray(box).T
    positions = np.asarray(state.position) @ cell
    return dataclasses.replace(system.crystal, positions=positions, cell=cell)


def _write_frame(path: Path, crystal: Crystal, data: dict, step: int, time_fs: float) -> None:
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.units import fs

    atoms = crystal.to_ase()
    atoms.set_velocities(data["velocities"] / fs)  # Å/fs -> Å per ASE time unit
    atoms.calc = SinglePointCalculator(
        atoms, energy=float(data["energy"]), forces=data["forces"], stress=data["stress"]
    )
    atoms.info.update(step=step, time_fs=time_fs)
    ase.io.write(path, atoms, format="extxyz", append=True)


@contextlib.contextmanager
def _quiet_jax_md_x64():
    """JAX-MD 0.2.29's sparse pruning scatters int64 into int32 under x64, and its float32
    runs ask for float64 sums (warnings raised while tracing); harmless, and not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "scatter inputs have incompatible types", FutureWarning)
        warnings.filterwarnings("ignore", "Explicitly requested dtype float64", UserWarning)
        yield


@_quiet_jax_md_x64()
def _run(
    system: System,
    init: Callable,
    apply: Callable,
    conserved: Callable | None,
    steps: int,
    dt_fs: float,
    temperature_K: float,
    *,
    npt: bool = False,
    seed: int = 0,
    log_every: int = 10,
    trajectory: str | Path | None = None,
    traj_every: int | None = None,
    max_temperature_K: float | None = None,
    max_force: float = 100.0,
    progress: bool = True,
    restart: str | Path | None = None,
    time_limit_s: float | None = None,
) -> MDResult:
    """Shared loop of the runners.

    Args:
        seed: of the initial Maxwell–Boltzmann velocities (and of Langevin noise).
        log_every: steps per compiled chunk and per log entry; ``steps`` is rounded up to a
          multiple of it.
        trajectory: extxyz path (overwritten) or None.
        traj_every: steps between frames; default ``10 * log_every``; rounded to a multiple of
          ``log_every``.
        max_temperature_K: stop above it (default: 10 × the target temperature, at least
          2,000 K).
        max_force: eV/Å; stop when any force component exceeds it.
        progress: a progress bar.
        restart: an ``.npz`` path. If it exists, the run continues from the state, step and
          log stored there (same system, runner and settings; ``steps`` counts from the first
          call, so a call with a larger ``steps`` extends the run, and the trajectory is
          appended to). It is rewritten (atomically) with each trajectory frame and at the
          end, so an interrupted run loses at most ``traj_every`` steps.
        time_limit_s: wall-clock seconds after which the run stops at the next trajectory
          frame (and restart checkpoint) even if ``steps`` is not reached; ``result.steps``
          says how far it got, and the same call with ``restart`` continues it. One call
          compiles once, so budgeted runs should use this rather than many short calls.
    """
    if steps < 0 or log_every < 1:
        raise ValueError("steps must be >= 0 and log_every >= 1")
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    traj_every = max(log_every, (traj_every or 10 * log_every) // log_every * log_every)
    max_temperature_K = max_temperature_K or max(10.0 * temperature_K, 2000.0)
    path = Path(trajectory) if trajectory is not None else None
    restart = Path(restart) if restart is not None else None
    resuming = restart is not None and restart.exists()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not resuming:
            path.unlink(missing_ok=True)

    from jmof.progress import progress_bar

    kT = BOLTZMANN_EV_PER_K * temperature_K
    key = jax.random.key(seed)
    nbrs = system.neighbor_fn.allocate(system.positions)
    init_kwargs = dict(mass=system.masses, neighbor=nbrs, kT=kT)
    if npt:
        state = init(key, system.positions, system.box, **init_kwargs)
    else:
        state = init(key, system.positions, **init_kwargs)

    @jax.jit
    def chunk(state, nbrs):
        def update(state, nbrs):
            box = _box_of(state, system, npt)
            return nbrs.update(state.position, box=box) if npt else nbrs.update(state.position)

        def body(_, carry):
            state, nbrs = carry
            nbrs = update(state, nbrs)
            return apply(state, neighbor=nbrs), nbrs

        # The last update counts the pairs at the positions of the chunk's last forces.
        state, nbrs = jax.lax.fori_loop(0, log_every, body, (state, nbrs))
        return state, update(state, nbrs)

    @jax.jit
    def observe(state, nbrs):
        box = _box_of(state, system, npt)
        energy = system.energy_fn(state.position, nbrs, box=box)
        kinetic = quantity.kinetic_energy(momentum=state.momentum, mass=state.mass)
        temperature = quantity.temperature(momentum=state.momentum, mass=state.mass)
        pressure = quantity.pressure(system.energy_fn, state.position, box, kinetic, neighbor=nbrs)
        return dict(
            potential_eV=energy,
            kinetic_eV=kinetic,
            temperature_K=temperature / BOLTZMANN_EV_PER_K,
            conserved_eV=jnp.zeros(()) if conserved is None else conserved(state, nbrs, box),
            pressure_GPa=pressure * EV_PER_A3_TO_GPA,
            volume_A3=jnp.abs(jnp.linalg.det(box)),
            max_force=jnp.max(jnp.abs(state.force)),
            finite=jnp.all(jnp.isfinite(state.position)) & jnp.isfinite(energy),
        )

    log = {k: [] for k in LOG_KEYS}
    reallocations = 0

    def record(step, obs):
        log["step"].append(step)
        log["time_fs"].append(step * dt_fs)
        for k in LOG_KEYS[2:]:
            log[k].append(float(obs[k]))
        if conserved is None:
            log["conserved_eV"][-1] = float("nan")

    @jax.jit
    def frame_data(state, nbrs):
        """What a trajectory frame stores besides positions and cell."""
        box = _box_of(state, system, npt)
        # JAX-MD's stress is minus the virial derivative; ours is ASE's sign.
        stress = -quantity.stress(system.energy_fn, state.position, box, neighbor=nbrs)
        return dict(
            energy=system.energy_fn(state.position, nbrs, box=box),
            forces=state.force,
            stress=stress,
            velocities=state.momentum / state.mass.reshape(-1, 1) / TIME_UNIT_FS,  # Å/fs
        )

    def result(step, state, nbrs):
        crystal = _crystal(system, state, _box_of(state, system, npt))
        arrays = {k: np.asarray(v) for k, v in log.items()}
        return MDResult(crystal, arrays, step, reallocations, path)

    def write(step, state, nbrs):
        if path is None:
            return
        crystal = _crystal(system, state, _box_of(state, system, npt))
        data = {k: np.asarray(v) for k, v in frame_data(state, nbrs).items()}
        _write_frame(path, crystal, data, step, step * dt_fs)

    def checkpoint(step, state, nbrs) -> int:
        if restart is not None:
            capacities = (int(nbrs.verlet.idx.shape[-1]), nbrs.capacity)
            _save_restart(restart, state, step, log, reallocations, *capacities)
        return step

    if resuming:
        state, step, loaded, reallocations, capacity, pairs = _load_restart(restart, state)
        log.update({k: list(v) for k, v in loaded.items()})
        grow = capacity - int(nbrs.verlet.idx.shape[-1])
        nbrs = system.neighbor_fn.allocate(
            state.position,
            extra_capacity=max(grow, 0),
            pair_capacity=pairs,
            **({"box": _box_of(state, system, npt)} if npt else {}),
        )
        if path is not None:
            _truncate_trajectory(path, step)
        saved = step
    else:
        obs = observe(state, nbrs)
        record(0, obs)
        write(0, state, nbrs)
        step = 0
        saved = checkpoint(step, state, nbrs)
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("md", total=steps, completed=min(step, steps))
        while step < steps:
            new_state, new_nbrs = chunk(state, nbrs)
            if bool(new_nbrs.did_buffer_overflow):
                # Rerun the chunk from its start with larger lists. JAX-MD's grows by a quarter
                # of its capacity per overflow, so that repeated overflows cannot loop forever;
                # the packed pairs by their spare room over the most seen in the chunk (a count
                # that JAX-MD's overflow leaves too low, then the next overflow corrects it).
                reallocations += 1
                verlet = nbrs.verlet.idx.shape[-1]
                nbrs = system.neighbor_fn.allocate(
                    state.position,
                    extra_capacity=max(verlet // 4, 8) * reallocations
                    if bool(new_nbrs.verlet.did_buffer_overflow)
                    else 0,
                    pair_capacity=max(
                        nbrs.capacity,
                        math.ceil(system.capacity_multiplier * int(new_nbrs.count)),
                    ),
                    **({"box": _box_of(state, system, npt)} if npt else {}),
                )
                continue
            obs = observe(new_state, new_nbrs)
            problem = None
            if not bool(obs["finite"]):
                problem = "positions or energy are not finite"
            elif float(obs["temperature_K"]) > max_temperature_K:
                problem = (
                    f"temperature {float(obs['temperature_K']):.0f} K > {max_temperature_K:.0f} K"
                )
            elif float(obs["max_force"]) > max_force:
                problem = (
                    f"a force component of {float(obs['max_force']):.1f} eV/Å > {max_force} eV/Å"
                )
            if problem:
                partial = result(step, state, nbrs)
                if path is not None:
                    write(step, state, nbrs)
                raise SimulationError(
                    f"simulation stopped between steps {step} and {step + log_every}: {problem}; "
                    f"the last good frame (step {step}) is in result.crystal"
                    + (f" and at the end of {path}" if path else ""),
                    partial,
                )
            state, nbrs = new_state, new_nbrs
            step += log_every
            record(step, obs)
            bar.update(task, advance=log_every)
            if step % traj_every == 0:
                write(step, state, nbrs)
                saved = checkpoint(step, state, nbrs)
                if deadline is not None and time.monotonic() > deadline:
                    break
    if saved != step:  # a run that ends on a trajectory frame has just been saved
        checkpoint(step, state, nbrs)
    return result(step, state, nbrs)


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def restart_steps(path: str | Path | None) -> int:
    """Steps done by the run whose restart file is ``path`` (0 if there is none yet)."""
    if path is None or not Path(path).exists():
        return 0
    with np.load(path) as data:
        return int(data["step"])


def _save_restart(
    path: Path, state, step: int, log: dict, reallocations: int, capacity: int, pairs: int
):
    """Write the integrator state (every pytree leaf; PRNG keys as their raw data), the step,
    the log and the capacities of the neighbour list (JAX-MD's, and of the packed pairs) to
    ``path``, replacing it atomically."""
    arrays = {}
    for k, leaf in enumerate(jax.tree.leaves(state)):
        arrays[f"key_{k}" if _is_key(leaf) else f"leaf_{k}"] = np.asarray(
            jax.random.key_data(leaf) if _is_key(leaf) else leaf
        )
    arrays |= {f"log_{k}": np.asarray(v, np.float64) for k, v in log.items()}
    arrays |= dict(step=step, reallocations=reallocations, capacity=capacity, pairs=pairs)
    save_npz(path, **arrays)


def _load_restart(path: Path, template):
    """``(state, step, log, reallocations, capacity, pairs)`` from a file of
    :func:`_save_restart` (``pairs`` is None in files written before pairs were packed);
    ``template`` is a fresh state of the same run, which fixes the pytree structure."""
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path) as data:
        saved = [name for name in data.files if name.startswith(("leaf_", "key_"))]
        if len(saved) != len(leaves):
            raise ValueError(
                f"{path} is a restart file of another run ({len(saved)} state leaves, this "
                f"run has {len(leaves)}); use a new restart path or delete it"
            )
        restored = []
        for k, leaf in enumerate(leaves):
            name = f"key_{k}" if _is_key(leaf) else f"leaf_{k}"
            shape = jax.random.key_data(leaf).shape if _is_key(leaf) else np.shape(leaf)
            if name not in data or data[name].shape != shape:
                raise ValueError(
                    f"{path} is a restart file of another run (state leaf {k} differs: "
                    f"{data[name].shape if name in data else 'missing'} vs {shape}); use a new "
                    "restart path or delete it"
                )
            value = data[name]
            if _is_key(leaf):
                restored.append(jax.random.wrap_key_data(jnp.asarray(value)))
            elif hasattr(leaf, "dtype"):
                restored.append(jnp.asarray(value, leaf.dtype))
            else:  # a Python scalar of the state (e.g. a barostat mass)
                restored.append(type(leaf)(value))
        log = {k: data[f"log_{k}"].tolist() for k in LOG_KEYS}
        log["step"] = [int(x) for x in log["step"]]
        step, reallocations, capacity = (
            int(data[k]) for k in ("step", "reallocations", "capacity")
        )
        pairs = int(data["pairs"]) if "pairs" in data else None
    return jax.tree.unflatten(treedef, restored), step, log, reallocations, capacity, pairs


def _truncate_trajectory(path: Path, step: int) -> None:
    """Drop frames after ``step`` (written after the last restart point of an interrupted
    run), so that continuing does not repeat them."""
    import ase.io

    if not path.exists():
        return
    frames = ase.io.read(path, ":")
    keep = [f for f in frames if int(f.info.get("step", 0)) <= step]
    if len(keep) != len(frames):
        ase.io.write(path, keep, format="extxyz")
