"""Physical consistency checks for interatomic potentials, for tests and for users.

    import jax; jax.config.update("jax_enable_x64", True)
    from jmof.testing import check_potential
    for result in check_potential(model.apply, params, crystal, cutoff=5.0):
        print(result)                      # name, max relative error, tolerance, passed
    assert_potential(model.apply, params, crystal, cutoff=5.0)   # AssertionError with a table

A potential is ``energy_fn(params, graph) -> [G]`` eV (see :mod:`jmof.potential`). Every check
builds the graph from the crystal with :func:`jmof.graph.radius_graph` at ``cutoff``, evaluates
energy, forces and stress in float64 (parameters are cast), and compares against a reference
that does not come from the same evaluation:

========================  =========================================================================
``rotation``              random rotations and reflections Q: E(QR) = E, F' = F Qᵀ, σ' = Q σ Qᵀ
``translation``           rigid translation by a random vector (positions not wrapped)
``permutation``           random reordering of the atoms: E equal, forces permuted
``supercell``             the (2, 2, 1) supercell: E = 4 E, forces tiled, stress equal
``forces_fd``             forces against central differences of the energy (a few atoms, 3 axes)
``stress_fd``             stress against central differences in the 6 strain components
========================  =========================================================================

Errors are relative: ``max |a - b| / max |b|`` over all entries of a quantity, the largest over
E, F and σ. A potential equivariant under rotations only (e.g. NequIP with ``group="SO3"``, as
SevenNet-0) is checked with ``reflections=False``. Symmetry checks pass at
``symmetry_tolerance`` (default 1e-9); finite differences at ``fd_tolerance`` (default 1e-6,
step 1e-4 Å or 1e-4 strain: truncation error ~1e-8).
A crystal thinner than twice the cutoff is a useful input: it has several images of the same
neighbour, and ``supercell`` then compares it with a cell where they are distinct atoms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jmof.graph import Graph, batch, radius_graph
from jmof.potential import Prediction, energy_forces_stress, strain_graph
from jmof.structure import Crystal

__all__ = [
    "CHECKS",
    "CheckResult",
    "assert_potential",
    "check_potential",
    "random_orthogonal",
]

CHECKS = ("rotation", "translation", "permutation", "supercell", "forces_fd", "stress_fd")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check: its name, the largest relative error, the tolerance and the verdict."""

    name: str
    error: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.name:<12} {self.error:10.2e} <= {self.tolerance:.0e}  {verdict}  {self.detail}"
        )


def random_orthogonal(rng: np.random.Generator, reflect: bool) -> np.ndarray:
    """[3, 3] a random rotation (det +1) or, with ``reflect``, rotation-reflection (det -1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)


class _Evaluator:
    """Energy, forces and stress of single crystals, float64, jit-compiled once per shape."""

    def __init__(self, energy_fn, params, cutoff: float):
        if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
            raise RuntimeError(
                "the potential checks need float64: call "
                'jax.config.update("jax_enable_x64", True) before creating arrays'
            )
        self.params = jax.tree.map(
            lambda x: (
                jnp.asarray(x, jnp.float64)
                if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
                else x
            ),
            params,
        )
        self.cutoff = cutoff
        self.energy_fn = energy_fn
        self._efs = jax.jit(lambda p, g: energy_forces_stress(energy_fn, p, g))
        self._energy = jax.jit(lambda p, g: energy_fn(p, g))

    def graph(self, crystal: Crystal) -> Graph:
        one = radius_graph(crystal, self.cutoff)
        graph = batch([one], n_graph=2)
        return jax.tree.map(jnp.asarray, graph)

    def __call__(self, crystal: Crystal) -> Prediction:
        graph = self.graph(crystal)
        out = self._efs(self.params, graph)
        n = crystal.n_atoms
        return Prediction(
            energy=float(out.energy[0]),
            forces=np.asarray(out.forces[:n]),
            stress=np.asarray(out.stress[0]),
        )

    def energy(self, graph: Graph) -> float:
        return float(self._energy(self.params, graph)[0])


def _transformed(crystal: Crystal, positions: np.ndarray, cell: np.ndarray, species=None):
    return Crystal(
        species=np.asarray(crystal.species if species is None else species),
        positions=np.asarray(positions, np.float64),
        cell=np.asarray(cell, np.float64),
        pbc=crystal.pbc,
    )


def _check_rotation(
    ev, crystal, ref, rng, n_rotations: int, reflections: bool = True
) -> tuple[float, str]:
    worst, detail = 0.0, ""
    for k in range(n_rotations):
        q = random_orthogonal(rng, reflect=reflections and k % 2 == 1)
        pos = np.asarray(crystal.positions) @ q.T
        out = ev(_transformed(crystal, pos, np.asarray(crystal.cell) @ q.T))
        err = max(
            _relative(out.energy, ref.energy),
            _relative(out.forces, ref.forces @ q.T),
            _relative(out.stress, q @ ref.stress @ q.T),
        )
        if err > worst:
            worst, detail = err, f"det Q = {np.linalg.det(q):+.0f}"
    return worst, detail


def _check_translation(ev, crystal, ref, rng) -> tuple[float, str]:
    shift = rng.normal(size=3) * 3.0
    out = ev(_transformed(crystal, np.asarray(crystal.positions) + shift, crystal.cell))
    err = max(
        _relative(out.energy, ref.energy),
        _relative(out.forces, ref.forces),
        _relative(out.stress, ref.stress),
    )
    return err, f"t = {np.round(shift, 2).tolist()} Å"


def _check_permutation(ev, crystal, ref, rng) -> tuple[float, str]:
    perm = rng.permutation(crystal.n_atoms)
    out = ev(
        _transformed(
            crystal,
            np.asarray(crystal.positions)[perm],
            crystal.cell,
            np.asarray(crystal.species)[perm],
        )
    )
    err = max(
        _relative(out.energy, ref.energy),
        _relative(out.forces, ref.forces[perm]),
        _relative(out.stress, ref.stress),
    )
    return err, ""


def _check_supercell(ev, crystal, ref, repeats) -> tuple[float, str]:
    big = crystal.repeat(repeats)
    out = ev(big)
    n_images = int(np.prod(repeats))
    err = max(
        _relative(out.energy, n_images * ref.energy),
        _relative(out.forces, np.tile(ref.forces, (n_images, 1))),
        _relative(out.stress, ref.stress),
    )
    return err, f"repeats {tuple(repeats)}, {big.n_atoms} atoms"


def _check_forces_fd(ev, crystal, ref, rng, n_atoms: int, step: float) -> tuple[float, str]:
    graph = ev.graph(crystal)
    atoms = rng.choice(crystal.n_atoms, size=min(n_atoms, crystal.n_atoms), replace=False)
    numeric, analytic = [], []
    for i in atoms:
        for axis in range(3):
            energies = []
            for sign in (1.0, -1.0):
                pos = graph.positions.at[i, axis].add(sign * step)
                energies.append(ev.energy(dataclasses.replace(graph, positions=pos)))
            numeric.append(-(energies[0] - energies[1]) / (2 * step))
            analytic.append(ref.forces[i, axis])
    # Relative to the largest force component of the crystal, not of the sampled atoms.
    err = float(
        np.max(np.abs(np.subtract(numeric, analytic))) / max(np.abs(ref.forces).max(), 1e-300)
    )
    return err, f"atoms {sorted(atoms.tolist())}, step {step} Å"


def _check_stress_fd(ev, crystal, ref, step: float) -> tuple[float, str]:
    graph = ev.graph(crystal)
    volume = abs(np.linalg.det(np.asarray(crystal.cell)))
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            energies = []
            for sign in (1.0, -1.0):
                strain = np.zeros((2, 3, 3))
                strain[0, a, b] += sign * step / (1 if a == b else 2)
                strain[0, b, a] += 0 if a == b else sign * step / 2
                energies.append(ev.energy(strain_graph(graph, jnp.asarray(strain))))
            numeric[a, b] = numeric[b, a] = (energies[0] - energies[1]) / (2 * step) / volume
    return _relative(numeric, ref.stress), f"strain step {step}"


def check_potential(
    energy_fn: Callable,
    params,
    crystal: Crystal,
    *,
    cutoff: float,
    checks: Sequence[str] = CHECKS,
    seed: int = 0,
    n_rotations: int = 4,
    reflections: bool = True,
    supercell_repeats: Sequence[int] = (2, 2, 1),
    fd_atoms: int = 4,
    fd_step: float = 1e-4,
    symmetry_tolerance: float = 1e-9,
    fd_tolerance: float = 1e-6,
) -> list[CheckResult]:
    """Run ``checks`` (names from :data:`CHECKS`) on one crystal; see the module docstring.

    Args:
        energy_fn: ``energy_fn(params, graph) -> [G]`` eV.
        params: its parameters (cast to float64 here).
        crystal: the test structure (periodic; a cell thinner than 2 × cutoff is allowed).
        cutoff: Å, radius of the graph the potential expects.
        checks: which checks to run.
        seed: of the random rotations, translation, permutation and sampled atoms.
        n_rotations: rotations tried (every second one a reflection, with ``reflections``).
        reflections: include reflections (False for potentials that are only rotation
          equivariant).
        supercell_repeats: of the ``supercell`` check.
        fd_atoms, fd_step: atoms displaced and step (Å, and strain) of the finite differences.
        symmetry_tolerance, fd_tolerance: pass thresholds on the relative error.

    Returns:
        One :class:`CheckResult` per check, in the order asked.
    """
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {CHECKS}")
    ev = _Evaluator(energy_fn, params, cutoff)
    rng = np.random.default_rng(seed)
    ref = ev(crystal)
    results = []
    for name in checks:
        if name == "rotation":
            err, detail = _check_rotation(ev, crystal, ref, rng, n_rotations, reflections)
        elif name == "translation":
            err, detail = _check_translation(ev, crystal, ref, rng)
        elif name == "permutation":
            err, detail = _check_permutation(ev, crystal, ref, rng)
        elif name == "supercell":
            err, detail = _check_supercell(ev, crystal, ref, supercell_repeats)
        elif name == "forces_fd":
            err, detail = _check_forces_fd(ev, crystal, ref, rng, fd_atoms, fd_step)
        else:
            err, detail = _check_stress_fd(ev, crystal, ref, fd_step)
        tolerance = fd_tolerance if name.endswith("_fd") else symmetry_tolerance
        results.append(CheckResult(name, err, tolerance, detail))
    return results


def assert_potential(energy_fn: Callable, params, crystal: Crystal, *, cutoff: float, **kwargs):
    """:func:`check_potential`, raising AssertionError with the table if any check fails;
    returns the results otherwise."""
    results = check_potential(energy_fn, params, crystal, cutoff=cutoff, **kwargs)
    if not all(r.passed for r in results):
        table = "\n".join(str(r) for r in results)
        raise AssertionError(f"potential checks failed on {crystal.formula}:\n{table}")
    return results
