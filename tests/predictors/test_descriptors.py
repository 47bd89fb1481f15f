"""Descriptors: bond rule, hand-computed RACs, an analytic coordination sequence, invariance to
rotation, translation, permutation and the choice of cell, and real CoRE MOFs."""

from __future__ import annotations

import numpy as np
import pytest

from jmof import Crystal
from predictors.descriptors import bond_graph, describe, feature_names, featurize

CHI = {"H": 2.20, "O": 3.44, "Zn": 1.65, "C": 2.55}  # Pauling


def _box(symbols_positions, box=20.0):
    from ase.data import atomic_numbers

    species = np.array([atomic_numbers[s] for s, _ in symbols_positions], np.int32)
    positions = np.array([p for _, p in symbols_positions], np.float64)
    return Crystal(species=species, positions=positions, cell=np.eye(3) * box)


@pytest.fixture(scope="module")
def zn_hydroxide():
    """H–O–Zn–O–H, bent, in a 20 Å box: no periodic bonds. Zn–O 1.95 Å, O–H 0.96 Å."""
    c = np.array([10.0, 10.0, 10.0])
    u1, u2 = np.array([1.0, 0.0, 0.0]), np.array([-0.5, np.sqrt(3) / 2, 0.0])  # 120° at Zn
    return _box(
        [
            ("H", c + 2.91 * u1),
            ("O", c + 1.95 * u1),
            ("Zn", c),
            ("O", c + 1.95 * u2),
            ("H", c + 2.91 * u2),
        ]
    )


@pytest.fixture(scope="module")
def diamond():
    """Primitive diamond (2 atoms, fcc a = 3.567 Å): every bond crosses a cell face."""
    a = 3.567
    cell = a / 2 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    return Crystal(
        species=np.array([6, 6], np.int32),
        positions=np.array([[0.0, 0.0, 0.0], [a / 4, a / 4, a / 4]]),
        cell=cell,
    )


@pytest.fixture(scope="module")
def real_mofs():
    from jmof.data import coremof

    return coremof.load("2019-ASR", limit=120, progress=False).crystals[:30]


def test_bond_rule_and_toy_graph(zn_hydroxide):
    g = bond_graph(zn_hydroxide)
    pairs = sorted({tuple(sorted(p)) for p in zip(g.senders.tolist(), g.receivers.tolist())})
    assert pairs == [(0, 1), (1, 2), (2, 3), (3, 4)]  # Zn–H (2.91 Å) and O···O are not bonds
    assert g.n_bonds == 4 and not g.shifts.any()
    np.testing.assert_array_equal(g.degree, [1, 2, 2, 2, 1])


def test_tolerance_is_additive():
    # C–O at r_C + r_O + 0.2 Å = 0.76 + 0.66 + 0.2: a bond with 0.4 Å tolerance, none with 0.1.
    crystal = _box([("C", [5.0, 5.0, 5.0]), ("O", [5.0 + 1.62, 5.0, 5.0])])
    assert bond_graph(crystal, tolerance=0.4).n_bonds == 1
    assert bond_graph(crystal, tolerance=0.1).n_bonds == 0


def test_bond_across_the_cell_boundary():
    # Zn near x = 0 and O near x = L: 2.0 Å apart only through the periodic boundary.
    crystal = _box([("Zn", [0.5, 3.0, 3.0]), ("O", [8.5, 3.0, 3.0])], box=10.0)
    g = bond_graph(crystal)
    assert g.n_bonds == 1
    forward = np.flatnonzero(g.senders == 1)[0]  # O -> Zn
    assert g.receivers[forward] == 0
    np.testing.assert_array_equal(g.shifts[forward], [1, 0, 0])
    assert g.lengths[forward] == pytest.approx(2.0)


def test_metal_metal_contacts_are_optional():
    crystal = _box([("Cu", [5.0, 5.0, 5.0]), ("Cu", [7.6, 5.0, 5.0])])  # paddlewheel Cu–Cu
    assert bond_graph(crystal).n_bonds == 0
    assert bond_graph(crystal, metal_metal=True).n_bonds == 1


def test_racs_by_hand(zn_hydroxide):
    f = describe(zn_hydroxide)
    H, O, Zn = CHI["H"], CHI["O"], CHI["Zn"]
    # Metal-centred: Zn at depth 0, two O at depth 1, two H at depth 2, nothing at depth 3.
    assert f["mc_prod_chi_0"] == pytest.approx(Zn * Zn)
    assert f["mc_prod_chi_1"] == pytest.approx(Zn * (O + O))
    assert f["mc_prod_chi_2"] == pytest.approx(Zn * (H + H))
    assert f["mc_prod_chi_3"] == 0.0
    assert f["mc_diff_chi_1"] == pytest.approx((Zn - O) + (Zn - O))
    assert f["mc_prod_Z_2"] == pytest.approx(30 * (1 + 1))
    assert f["mc_prod_T_1"] == pytest.approx(2 * (2 + 2))  # T = coordination number
    assert f["mc_prod_I_1"] == 2.0
    # Linkers: the two O–H fragments; RACs are per-linker sums averaged over the linkers.
    assert f["linkers_per_metal"] == 2.0
    assert f["linker_prod_I_0"] == 2.0
    assert f["linker_prod_chi_0"] == pytest.approx(O * O + H * H)
    assert f["linker_prod_chi_1"] == pytest.approx(O * H + H * O)
    assert f["linker_prod_chi_2"] == 0.0
    # Linker-connecting atoms: the two O, each with one H at depth 1 in the metal-free graph.
    assert f["lc_prod_chi_1"] == pytest.approx((O * H + O * H) / 2)
    assert f["lc_diff_chi_1"] == pytest.approx(O - H)
    assert f["lc_prod_chi_2"] == 0.0
    # Full graph: 4 bonds, each counted in both directions, averaged over the 5 atoms.
    assert f["full_prod_I_1"] == pytest.approx(8 / 5)
    assert f["full_prod_chi_1"] == pytest.approx(2 * (2 * H * O + 2 * O * Zn) / 5)
    assert f["full_prod_I_2"] == pytest.approx((2 * 1 + 2 * 1 + 2) / 5)  # H–Zn ×2, O–O
    # Composition: fractions H 0.4, O 0.4, Zn 0.2.
    assert f["comp_chi_mean"] == pytest.approx(0.4 * H + 0.4 * O + 0.2 * Zn)
    mean_z = 0.4 * 1 + 0.4 * 8 + 0.2 * 30
    std_z = np.sqrt(0.4 * (1 - mean_z) ** 2 + 0.4 * (8 - mean_z) ** 2 + 0.2 * (30 - mean_z) ** 2)
    assert f["comp_Z_std"] == pytest.approx(std_z)
    assert f["comp_Z_range"] == 29.0
    assert f["n_elements"] == 3.0 and f["metal_fraction"] == pytest.approx(0.2)
    assert f["has_metal"] == 1.0 and f["cn_metal_mean"] == 2.0


def test_diamond_coordination_sequence(diamond):
    """On the infinite diamond net the shells hold 1, 4, 12, 24 atoms (coordination sequence);
    a BFS on the 2-atom quotient graph would find 1, 1 and nothing further."""
    f = describe(diamond)
    np.testing.assert_allclose([f[f"full_prod_I_{d}"] for d in range(4)], [1, 4, 12, 24])
    np.testing.assert_allclose([f[f"full_prod_Z_{d}"] for d in range(4)], [36, 144, 432, 864])
    np.testing.assert_allclose(f["full_prod_T_1"], 4 * 4 * 4)
    # No metal: metal-centred RACs are zero and flagged; the carbon net is one periodic
    # component, so there are no (finite) linkers.
    assert f["has_metal"] == 0.0 and f["mc_prod_chi_0"] == 0.0 and f["mc_prod_I_1"] == 0.0
    assert f["periodic_nonmetal_fraction"] == 1.0 and f["linker_prod_I_0"] == 0.0


# --- invariance -----------------------------------------------------------------------------


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _transformed(crystal, kind, seed=0):
    rng = np.random.default_rng(seed)
    species, positions, cell = crystal.species, crystal.positions, crystal.cell
    if kind == "rotate_translate":
        R = _rotation(seed)
        positions, cell = positions @ R.T + rng.normal(size=3) * 5.0, cell @ R.T
    elif kind == "permute":
        order = rng.permutation(len(species))
        species, positions = species[order], positions[order]
    elif kind == "supercell_2x1x1":
        species = np.concatenate([species, species])
        positions = np.concatenate([positions, positions + cell[0]])
        cell = cell * np.array([[2.0], [1.0], [1.0]])
    elif kind == "other_cell":  # same lattice, different basis (a, b, c) -> (a + b, b, c - a)
        cell = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]]) @ cell
    elif kind == "wrapped":  # every atom moved to its image inside the cell
        frac = np.linalg.solve(cell.T, positions.T).T
        positions = (frac - np.floor(frac)) @ cell
    return Crystal(species=species, positions=positions, cell=cell)


KINDS = ["rotate_translate", "permute", "supercell_2x1x1", "other_cell", "wrapped"]


@pytest.mark.parametrize("kind", KINDS)
def test_invariance_real_mof(real_mofs, kind):
    # Real MOFs: metal nodes, finite linkers, cells a few bonds wide.
    for crystal in (real_mofs[0], real_mofs[3]):
        X, _ = featurize([crystal, _transformed(crystal, kind)], progress=False)
        np.testing.assert_allclose(X[1], X[0], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_invariance_thin_cell(diamond, kind):
    X, _ = featurize([diamond, _transformed(diamond, kind)], progress=False)
    np.testing.assert_allclose(X[1], X[0], rtol=1e-12, atol=1e-10)


def test_racs_match_an_explicit_supercell(real_mofs):
    """Reference: shortest paths (scipy) on a finite 3×3×3 block of the crystal without
    periodicity, counted from the atoms of the central cell."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    crystal = _transformed(next(c for c in real_mofs if c.n_atoms < 200), "wrapped")
    n = crystal.n_atoms
    images = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    block = Crystal(
        species=np.tile(crystal.species, len(images)),
        positions=np.concatenate([crystal.positions + s @ crystal.cell for s in images]),
        cell=crystal.cell * 3,
        pbc=(False, False, False),
    )
    g = bond_graph(block)
    adjacency = coo_matrix((np.ones(len(g.senders)), (g.senders, g.receivers)), (27 * n,) * 2)
    centre = int(np.flatnonzero((images == 0).all(axis=1))[0])
    starts = np.arange(centre * n, (centre + 1) * n)
    hops = shortest_path(adjacency.tocsr(), unweighted=True, indices=starts)
    # Paths of 3 bonds from the central cell must stay inside the block: the cell heights
    # (volume / face area) exceed 3 bond lengths.
    faces = np.linalg.norm(np.cross(crystal.cell[[1, 2, 0]], crystal.cell[[2, 0, 1]]), axis=1)
    assert np.all(crystal.volume / faces > 3 * g.lengths.max())
    z = block.species.astype(float)
    f = describe(crystal)
    for d in range(4):
        expected = (z[starts][:, None] * z[None, :] * (hops == d)).sum() / n
        assert f[f"full_prod_Z_{d}"] == pytest.approx(expected, rel=1e-12)


# --- real data -----------------------------------------------------------------------------


def test_featurize_real_coremofs(real_mofs):
    X, names = featurize(real_mofs, progress=False)
    assert X.shape == (30, len(names)) and names == feature_names()
    assert X.dtype == np.float64 and np.isfinite(X).all()
    assert len(set(names)) == len(names)
    f = dict(zip(names, X.T))
    assert np.all(f["has_metal"] == 1.0) and np.all(f["mc_prod_I_1"] > 0)
    from jmof.data import coremof

    density = coremof.load("2019-ASR", limit=120, progress=False).targets["cm3_g"][:30]
    np.testing.assert_allclose(f["density_g_cm3"], density, rtol=2e-3)
    X2, _ = featurize(real_mofs[:5], progress=False)
    np.testing.assert_array_equal(X2, X[:5])  # deterministic
