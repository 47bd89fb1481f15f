"""Hand-built MOF descriptors: composition statistics, revised autocorrelations (RACs) on the
periodic bond graph, and cell-invariant density features, for the gradient-boosting baselines.

Everything here is host-side NumPy/SciPy; a structure becomes one float64 vector whose entries
do not depend on the choice of unit cell (supercell, origin, atom order, rotation).

**Bond rule.** Atoms ``i`` and ``j`` (through any periodic image) are bonded when

.. math:: d_{ij} < r_i + r_j + \\tau, \\qquad \\tau = 0.4\\ \\text{Å by default},

with Cordero covalent radii ``r`` (Dalton Trans. 2008, 2832; ``ase.data.covalent_radii``). An
additive tolerance is the Cambridge Structural Database convention that CoRE MOF's cleaning
(Chung et al., Chem. Mater. 2014 and J. Chem. Eng. Data 2019) inherits; it behaves better than a
multiplicative factor across sizes (1.2 × (r_i + r_j) is 0.2 Å of slack for H–H and 1 Å for
La–O). molSimplify's MOF RACs use per-pair factors (effective 1.05–1.25 × (r_i + r_j)) and, like
here by default, no metal–metal bonds, so that paddlewheel Cu–Cu contacts do not merge nodes
and "metal-centred" means "metal and its ligands". ``tolerance`` and ``metal_metal`` are
parameters of :func:`bond_graph`.

**Metals** are the elements pymatgen calls metals (alkali, alkaline earth, transition,
post-transition such as Al, Ga, In, Sn, Pb, Bi, lanthanides, actinides); the metalloids B, Si,
Ge, As, Sb, Te count as linker atoms.

**RACs** (Janet & Kulik, J. Phys. Chem. A 2017; for MOFs Moosavi et al., Nat. Commun. 2020).
For an atomic property ``P``, start atoms ``s`` and a scope graph, the product and difference
autocorrelations at bond depth ``d`` are

.. math::

    P^{\\times}_d = \\frac{1}{N}\\sum_{i \\in s}\\sum_{j} P_i P_j\\,\\delta(g_{ij}, d), \\qquad
    P^{-}_d = \\frac{1}{N}\\sum_{i \\in s}\\sum_{j} (P_i - P_j)\\,\\delta(g_{ij}, d),

where ``g_ij`` is the number of bonds on the shortest path from ``i`` to ``j`` in the scope
graph and ``j`` runs over every atom of the infinite crystal (all periodic images). Properties:
``chi`` (Pauling electronegativity), ``Z``, ``I`` (identity, 1), ``T`` (coordination number in
the full bond graph), ``S`` (covalent radius, Å); depths 0–3. Scopes and normalisations ``N``:

- ``mc`` (metal-centred): start at the metal atoms of the cell, full bond graph, ``N`` = number
  of metal atoms; product and difference.
- ``lc`` (linker-connecting): start at the non-metal atoms bonded to a metal, linker graph,
  ``N`` = number of those atoms; product and difference.
- ``linker``: the linker graph is the bond graph without the metal atoms; its finite connected
  components are the linkers; start at every linker atom, ``N`` = number of linkers in the cell,
  i.e. the mean over linkers of each linker's own (summed) RAC, as in the MOF RAC papers.
  Atoms of periodic (infinite) metal-free components are not linkers; their share is the
  feature ``periodic_nonmetal_fraction``.
- ``full``: start at every atom, full bond graph, ``N`` = number of atoms; product only.

Difference RACs of the identity, at depth 0, and over symmetric scopes (``linker``, ``full``)
vanish identically and are left out. With no metal (or no linker) the RACs of that scope are 0
and the flag ``has_metal`` (or ``linkers_per_metal`` = 0) says so.

**Graph distances on a periodic graph.** The usual practice (molSimplify) is a BFS on the
*quotient* graph whose nodes are the atoms of the unit cell. In cells only a few bonds wide that
graph has short cuts (a path that leaves through one face and comes back through the other
reaches an atom "early", and an atom and its own image are one node), so the RACs would change
with the supercell. Here the BFS runs on the infinite periodic graph instead: its nodes are
(atom of the cell, lattice image) pairs, expanded from each start atom up to depth 3 with
vectorised NumPy. This equals the quotient-graph BFS whenever the cell is wide enough and makes
every RAC exactly invariant to the choice of cell with the normalisations above.

**Cell features** are density (g/cm³), volume per atom (Å³), atoms per Å³ and the covalent
packing fraction. Cell lengths and angles are left out on purpose: they change with the choice
of cell (a supercell doubles a length, a Niggli reduction changes angles), so a model would
learn the CIF's setting rather than the material.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence

import numpy as np

from jmof.graph import neighbor_list
from jmof.structure import Crystal

DEPTHS = (0, 1, 2, 3)
RAC_PROPERTIES = ("chi", "Z", "I", "T", "S")
COMPOSITION_PROPERTIES = ("Z", "chi", "rcov", "mass", "group", "period", "mendeleev")
_STATS = ("mean", "std", "min", "max", "range")
_ELEMENT_FRACTIONS = (("H", 1), ("C", 6), ("N", 7), ("O", 8))
_N_ELEMENTS = 119  # tables indexed by Z = 0..118
_SCALAR_FEATURES = (
    "n_elements",
    "metal_fraction",
    "has_metal",
    "density_g_cm3",
    "volume_per_atom_A3",
    "atoms_per_A3",
    "packing_fraction_cov",
    "cn_mean",
    "cn_metal_mean",
    "isolated_fraction",
    "lc_fraction",
    "linkers_per_metal",
    "periodic_nonmetal_fraction",
)


# --- element tables -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ElementTable:
    """Per-element properties as [119] arrays indexed by Z (read-only)."""

    Z: np.ndarray
    chi: np.ndarray  # Pauling; 0 where undefined (He, Ne, Ar, Z = 0)
    rcov: np.ndarray  # Å, Cordero
    mass: np.ndarray  # amu
    group: np.ndarray
    period: np.ndarray
    mendeleev: np.ndarray
    metal: np.ndarray  # bool


@functools.cache
def _elements() -> _ElementTable:
    """A constant table, built once from pymatgen and ASE (both already dependencies)."""
    import warnings

    from ase.data import atomic_masses, covalent_radii
    from pymatgen.core.periodic_table import Element

    n = _N_ELEMENTS
    chi, group, period, mendeleev = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    metal = np.zeros(n, bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns where Pauling χ is undefined
        for z in range(1, n):
            element = Element.from_Z(z)
            x = element.X
            chi[z] = x if np.isfinite(x) else 0.0
            group[z] = element.group
            period[z] = element.row
            mendeleev[z] = element.mendeleev_no or 0.0
            metal[z] = element.is_metal
    table = _ElementTable(
        Z=np.arange(n, dtype=np.float64),
        chi=chi,
        rcov=np.asarray(covalent_radii[:n], dtype=np.float64),
        mass=np.asarray(atomic_masses[:n], dtype=np.float64),
        group=group,
        period=period,
        mendeleev=mendeleev,
        metal=metal,
    )
    for field in dataclasses.fields(table):
        getattr(table, field.name).setflags(write=False)
    return table


def is_metal(species: np.ndarray) -> np.ndarray:
    """[n] bool, True for metal atoms (pymatgen's ``Element.is_metal``)."""
    return _elements().metal[np.asarray(species)]


# --- bond graph ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BondGraph:
    """The periodic bond graph of one crystal, undirected: every bond is stored in both
    directions, ``(i, j, S)`` and ``(j, i, -S)``, as in :func:`jmof.graph.neighbor_list`.

    Attributes:
        senders: [2 n_bonds] int32, atom ``i``.
        receivers: [2 n_bonds] int32, atom ``j``.
        shifts: [2 n_bonds, 3] int32, image of ``j``: the bond vector is
            ``positions[j] - positions[i] + shifts @ cell``.
        lengths: [2 n_bonds] Å.
        n_atoms: number of atoms in the cell.
    """

    senders: np.ndarray
    receivers: np.ndarray
    shifts: np.ndarray
    lengths: np.ndarray
    n_atoms: int

    @property
    def n_bonds(self) -> int:
        return len(self.senders) // 2

    @property
    def degree(self) -> np.ndarray:
        """[n_atoms] int, coordination number (bonds to every image count)."""
        return np.bincount(self.senders, minlength=self.n_atoms)


def bond_graph(crystal: Crystal, *, tolerance: float = 0.4, metal_metal: bool = False) -> BondGraph:
    """Bonds by covalent radii: ``d < r_i + r_j + tolerance`` through every periodic image.

    Args:
        crystal: the structure (any cell shape, also cells thinner than a bond).
        tolerance: Å, added to the sum of Cordero covalent radii (0.4 Å: the CSD convention).
        metal_metal: keep metal–metal contacts as bonds (off, as in molSimplify's MOF RACs).
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be ≥ 0 Å, got {tolerance}")
    table = _elements()
    species = np.asarray(crystal.species)
    positions = np.asarray(crystal.positions, dtype=np.float64)
    cell = np.asarray(crystal.cell, dtype=np.float64)
    n = len(species)
    if n == 0:
        empty = np.zeros(0, np.int32)
        return BondGraph(empty, empty, np.zeros((0, 3), np.int32), np.zeros(0), 0)
    radius = table.rcov[species]
    cutoff = 2.0 * float(radius.max()) + tolerance
    i, j, S = neighbor_list(positions, cell, crystal.pbc, cutoff)
    length = np.linalg.norm(positions[j] - positions[i] + S @ cell, axis=1)
    keep = length < radius[i] + radius[j] + tolerance
    if not metal_metal:
        metal = table.metal[species]
        keep &= ~(metal[i] & metal[j])
    return BondGraph(i[keep], j[keep], S[keep], length[keep], n)


# --- graph algorithms on the periodic graph --------------------------------------------------


def _edge_subset(graph: BondGraph, nodes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Edges with both ends in the boolean node mask ``nodes``."""
    keep = nodes[graph.senders] & nodes[graph.receivers]
    return graph.senders[keep], graph.receivers[keep], graph.shifts[keep]


def _components(
    n: int, senders: np.ndarray, receivers: np.ndarray, shifts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a periodic graph and whether each one is infinite.

    A component is infinite (periodic) when some cycle has a non-zero net lattice shift. Each
    node gets an image offset ``u`` along a BFS spanning tree (accumulated by pointer jumping);
    then a bond ``(i, j, S)`` closes a periodic cycle iff ``u_i + S - u_j != 0``.

    Returns:
        ``labels`` [n] int (component of each node) and ``periodic`` [n_components] bool.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    adjacency = coo_matrix((np.ones(len(senders)), (senders, receivers)), shape=(n, n)).tocsr()
    n_comp, labels = connected_components(adjacency, directed=False)
    # One BFS from a virtual root joined to one representative node of each component.
    representatives = np.unique(labels, return_index=True)[1]
    root = n
    rows = np.concatenate([senders, np.full(n_comp, root)])
    cols = np.concatenate([receivers, representatives])
    tree_graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    _, parent = breadth_first_order(tree_graph, root, directed=True, return_predecessors=True)
    parent[root] = root
    # Shift of the tree edge parent -> node (any of the parallel bonds will do).
    step = np.zeros((n + 1, 3), np.int64)
    if len(senders):
        keys = senders.astype(np.int64) * (n + 1) + receivers
        order = np.argsort(keys, kind="stable")
        child = np.flatnonzero(parent[:n] != root)
        wanted = parent[child].astype(np.int64) * (n + 1) + child
        step[child] = shifts[order[np.searchsorted(keys[order], wanted)]]
    # Pointer jumping: offset[k] becomes the sum of tree-edge shifts from the root to k.
    offset, ancestor = step.copy(), parent.copy()
    while np.any(ancestor != root):
        offset = offset + offset[ancestor]
        ancestor = ancestor[ancestor]
    mismatch = np.any(offset[senders] + shifts - offset[receivers] != 0, axis=1)
    periodic = np.zeros(n_comp, bool)
    periodic[labels[senders[mismatch]]] = True
    return labels, periodic


def _shells(
    starts: np.ndarray,
    n: int,
    senders: np.ndarray,
    receivers: np.ndarray,
    shifts: np.ndarray,
    depth: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Breadth-first shells on the infinite periodic graph, from every start atom at once.

    A BFS state is (start index ``k``, atom, lattice image); each (atom, image) pair is a
    distinct node of the infinite crystal, so distances are those of the real framework.

    Returns:
        For each depth ``d = 0..depth``: ``(k, atom)`` [m_d] int arrays, one entry per node at
        graph distance exactly ``d`` from ``starts[k]``.
    """
    starts = np.asarray(starts, np.int64)
    order = np.argsort(senders, kind="stable")
    targets, steps = receivers[order].astype(np.int64), shifts[order].astype(np.int64)
    degree = np.bincount(senders, minlength=n)
    first = np.concatenate([[0], np.cumsum(degree)])
    reach = depth * int(np.abs(shifts).max(initial=0))
    base = 2 * reach + 1
    if len(starts) * n * base**3 >= 2**62:
        raise ValueError("periodic graph too large to encode BFS states in int64")

    def encode(k, atom, image):
        cell_code = ((image[:, 0] + reach) * base + image[:, 1] + reach) * base + image[:, 2]
        return (k * n + atom) * base**3 + cell_code + reach

    k = np.arange(len(starts), dtype=np.int64)
    atom, image = starts.copy(), np.zeros((len(starts), 3), np.int64)
    shells = [(k, atom)]
    seen = [np.sort(encode(k, atom, image))]  # the last two shells: enough to exclude revisits
    for _ in range(depth):
        count = degree[atom]
        parent = np.repeat(np.arange(len(atom)), count)
        edge = first[atom][parent] + np.arange(len(parent)) - (np.cumsum(count) - count)[parent]
        k, atom, image = k[parent], targets[edge], image[parent] + steps[edge]
        keys, index = np.unique(encode(k, atom, image), return_index=True)
        fresh = np.ones(len(keys), bool)
        for previous in seen:
            if len(previous):
                at = np.minimum(np.searchsorted(previous, keys), len(previous) - 1)
                fresh &= previous[at] != keys
        index = index[fresh]
        k, atom, image = k[index], atom[index], image[index]
        shells.append((k, atom))
        seen = [seen[-1], keys[fresh]]
    return shells


# --- descriptor blocks --------------------------------------------------------------------------


def composition_features(species: np.ndarray) -> dict[str, float]:
    """Element-fraction statistics of atomic properties (intensive).

    For each property in :data:`COMPOSITION_PROPERTIES`: the fraction-weighted mean and standard
    deviation, and the min, max and range over the elements present; plus the number of elements,
    the metal atom fraction and the atom fractions of H, C, N, O.
    """
    table = _elements()
    elements, counts = np.unique(np.asarray(species), return_counts=True)
    fraction = counts / counts.sum()
    out: dict[str, float] = {}
    for name in COMPOSITION_PROPERTIES:
        values = getattr(table, name)[elements]
        mean = float(fraction @ values)
        std = float(np.sqrt(max(fraction @ (values - mean) ** 2, 0.0)))
        low, high = float(values.min()), float(values.max())
        out.update(
            {
                f"comp_{name}_mean": mean,
                f"comp_{name}_std": std,
                f"comp_{name}_min": low,
                f"comp_{name}_max": high,
                f"comp_{name}_range": high - low,
            }
        )
    out["n_elements"] = float(len(elements))
    out["metal_fraction"] = float(fraction @ table.metal[elements])
    for symbol, z in _ELEMENT_FRACTIONS:
        out[f"frac_{symbol}"] = float(fraction[elements == z].sum())
    return out


def cell_features(crystal: Crystal) -> dict[str, float]:
    """Density features that do not depend on the choice of unit cell."""
    n, volume = crystal.n_atoms, crystal.volume
    radius = _elements().rcov[np.asarray(crystal.species)]
    return {
        "density_g_cm3": crystal.density,
        "volume_per_atom_A3": volume / n,
        "atoms_per_A3": n / volume,
        "packing_fraction_cov": float(4.0 / 3.0 * np.pi * np.sum(radius**3) / volume),
    }


def rac_features(
    species: np.ndarray, graph: BondGraph, *, depths: Sequence[int] = DEPTHS
) -> dict[str, float]:
    """Revised autocorrelations over the ``mc``, ``lc``, ``linker`` and ``full`` scopes, plus
    bond-graph summaries (see the module docstring for definitions and normalisations).

    Args:
        species: [n] atomic numbers.
        graph: the periodic bond graph from :func:`bond_graph`.
        depths: bond depths (consecutive from 0).
    """
    table = _elements()
    species = np.asarray(species)
    n = len(species)
    depth = max(depths)
    metal = table.metal[species]
    degree = graph.degree
    # [n, 5] atomic properties in RAC_PROPERTIES order.
    columns = {"chi": table.chi[species], "Z": table.Z[species], "I": np.ones(n)}
    columns.update(T=degree.astype(np.float64), S=table.rcov[species])
    P = np.stack([columns[name] for name in RAC_PROPERTIES], axis=1)
    out: dict[str, float] = {}

    def accumulate(scope, shells, starts, select, norm, difference):
        """Add the RACs of one scope; ``select`` [len(starts)] bool picks the start atoms."""
        for d in depths:
            k, atom = shells[d]
            keep = select[k]
            Pi, Pj = P[starts[k[keep]]], P[atom[keep]]
            product = (Pi * Pj).sum(axis=0) / norm if norm else np.zeros(len(RAC_PROPERTIES))
            delta = (Pi - Pj).sum(axis=0) / norm if norm else np.zeros(len(RAC_PROPERTIES))
            for p, name in enumerate(RAC_PROPERTIES):
                out[f"{scope}_prod_{name}_{d}"] = float(product[p])
            if difference and d > 0:
                for p, name in enumerate(RAC_PROPERTIES):
                    if name != "I":
                        out[f"{scope}_diff_{name}_{d}"] = float(delta[p])

    # Full bond graph: full and metal-centred scopes.
    everyone = np.arange(n)
    shells = _shells(everyone, n, graph.senders, graph.receivers, graph.shifts, depth)
    accumulate("mc", shells, everyone, metal, int(metal.sum()), True)
    accumulate("full", shells, everyone, np.ones(n, bool), n, False)

    # Linker graph: the bond graph without metals.
    nonmetal = ~metal
    s, r, S = _edge_subset(graph, nonmetal)
    labels, periodic = _components(n, s, r, S)
    in_linker = nonmetal & ~periodic[labels]
    n_linkers = len(np.unique(labels[in_linker]))
    bonded_to_metal = np.zeros(n, bool)
    bonded_to_metal[graph.senders[metal[graph.receivers]]] = True
    connecting = nonmetal & bonded_to_metal
    linker_atoms = np.flatnonzero(nonmetal)
    shells = _shells(linker_atoms, n, s, r, S, depth)
    accumulate("lc", shells, linker_atoms, connecting[linker_atoms], int(connecting.sum()), True)
    accumulate("linker", shells, linker_atoms, in_linker[linker_atoms], n_linkers, False)

    n_metal = int(metal.sum())
    out["has_metal"] = float(n_metal > 0)
    out["cn_mean"] = float(degree.mean()) if n else 0.0
    out["cn_metal_mean"] = float(degree[metal].mean()) if n_metal else 0.0
    out["isolated_fraction"] = float(np.mean(degree == 0)) if n else 0.0
    out["lc_fraction"] = float(connecting.sum() / n) if n else 0.0
    out["linkers_per_metal"] = n_linkers / n_metal if n_metal else 0.0
    n_nonmetal = int(nonmetal.sum())
    periodic_atoms = int((nonmetal & periodic[labels]).sum())
    out["periodic_nonmetal_fraction"] = periodic_atoms / n_nonmetal if n_nonmetal else 0.0
    return out


def describe(crystal: Crystal, *, tolerance: float = 0.4) -> dict[str, float]:
    """All descriptors of one crystal by name, in :func:`feature_names` order."""
    if crystal.n_atoms == 0:
        raise ValueError("cannot describe a crystal with no atoms")
    graph = bond_graph(crystal, tolerance=tolerance)
    values = {
        **composition_features(crystal.species),
        **cell_features(crystal),
        **rac_features(crystal.species, graph),
    }
    return {name: values[name] for name in feature_names()}


@functools.cache
def _feature_names() -> tuple[str, ...]:
    names = [f"comp_{p}_{s}" for p in COMPOSITION_PROPERTIES for s in _STATS]
    names += [f"frac_{symbol}" for symbol, _ in _ELEMENT_FRACTIONS]
    names += list(_SCALAR_FEATURES)
    for scope in ("mc", "lc", "linker", "full"):
        for d in DEPTHS:
            names += [f"{scope}_prod_{p}_{d}" for p in RAC_PROPERTIES]
            if scope in ("mc", "lc") and d > 0:
                names += [f"{scope}_diff_{p}_{d}" for p in RAC_PROPERTIES if p != "I"]
    return tuple(names)


def feature_names() -> list[str]:
    """Names of the columns of :func:`featurize`, in order."""
    return list(_feature_names())


def _describe_many(args: tuple[list[Crystal], float]) -> np.ndarray:
    crystals, tolerance = args
    return np.array([list(describe(c, tolerance=tolerance).values()) for c in crystals])


def featurize(
    crystals: Sequence[Crystal],
    *,
    tolerance: float = 0.4,
    progress: bool = True,
    workers: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Descriptor matrix of many crystals (deterministic, NaN-free).

    Args:
        crystals: the structures.
        tolerance: Å, bond tolerance of :func:`bond_graph`.
        progress: show a progress bar (on a terminal).
        workers: processes; default 1 below 2000 structures (spawning workers costs ~6 s), else the
            CPU count.

    Returns:
        ``(X, names)``: [n, F] float64 and the F column names.
    """
    from jmof.progress import progress_bar

    crystals = list(crystals)
    names = feature_names()
    if workers is None:
        workers = 1 if len(crystals) < 2000 else os.cpu_count() or 1
    chunk = 32
    jobs = [(crystals[a : a + chunk], tolerance) for a in range(0, len(crystals), chunk)]
    rows: list[np.ndarray] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("descriptors", total=len(crystals))
        if workers <= 1 or len(jobs) <= 1:
            results = map(_describe_many, jobs)
            for job, block in zip(jobs, results):
                rows.append(block)
                bar.advance(task, len(job[0]))
        else:
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            # spawn: forking a process that has started JAX's threads can deadlock.
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for job, block in zip(jobs, pool.map(_describe_many, jobs)):
                    rows.append(block)
                    bar.advance(task, len(job[0]))
    X = np.concatenate(rows) if rows else np.zeros((0, len(names)))
    return X.reshape(len(crystals), len(names)).astype(np.float64), names
