"""Geometric descriptors against analytic cases and against Zeo++ (pyzeo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jmof
from jmof.physics import geometry

ROOT = Path(__file__).parents[2]
R = 3.0  # Å, sphere radius of the simple cubic test lattice
A = 10.0  # Å, lattice constant


@pytest.fixture(scope="module")
def simple_cubic():
    crystal = jmof.Crystal(np.array([6]), np.zeros((1, 3)), np.eye(3) * A)
    return crystal, geometry.distance_grid(crystal, 0.2, {6: R})


def test_surface_distance_is_exact(simple_cubic):
    crystal, _ = simple_cubic
    pts = np.random.default_rng(0).random((5000, 3)) * 3 - 1  # also outside [0, 1)
    d = geometry.surface_distance(crystal, pts, {6: R})
    x = (pts - np.round(pts)) * A
    assert np.allclose(d, np.linalg.norm(x, axis=1) - R, atol=1e-12)


@pytest.mark.parametrize("cell", [np.diag([9.3, 7.1, 0.5]),
                                  [[8.0, 0, 0], [3.1, 6.5, 0], [-1.7, 2.2, 7.4]]])  # fmt: skip
def test_blocked_distance_grid_equals_direct_queries(cell):
    """The block-candidate grid against a k-d tree query of every point: a skewed cell whose
    grid is no multiple of the block, and a cell thinner than one block."""
    rng = np.random.default_rng(1)
    crystal = jmof.Crystal(np.array([6, 8, 1, 30, 6, 7]), rng.random((6, 3)) @ np.asarray(cell),
                           np.asarray(cell, float))  # fmt: skip
    direct = geometry.distance_grid(crystal, 0.27, block=1)
    assert not np.any(np.asarray(direct.shape) % 4 == 0)
    for block in (2, 4, 5):
        blocked = geometry.distance_grid(crystal, 0.27, block=block)
        assert np.abs(blocked.values - direct.values).max() < 1e-12


def test_pore_diameters_of_simple_cubic_lattice(simple_cubic):
    crystal, dgrid = simple_cubic
    lcd = geometry.largest_included_sphere(crystal, dgrid, {6: R})
    assert lcd == pytest.approx(2 * (A * np.sqrt(3) / 2 - R), abs=1e-4)  # body centre
    window = 2 * (A / np.sqrt(2) - R)  # face centre
    coarse = geometry.distance_grid(crystal, 0.4, {6: R})  # 25 points: none at the window
    on_grid, _ = geometry.largest_free_sphere(coarse)
    assert window - 2 * coarse.spacing < on_grid < window
    pld, lfpd = geometry.largest_free_sphere(coarse, crystal=crystal, radii={6: R})
    assert pld == pytest.approx(window, abs=1e-9)  # the saddle solved for exactly
    assert lfpd == pytest.approx(lcd, abs=2 * coarse.spacing)  # LFPD stays grid-limited


def test_void_fractions_and_pockets(simple_cubic):
    _, dgrid = simple_cubic
    exact = 1 - 4 / 3 * np.pi * R**3 / A**3
    assert geometry.void_fraction(dgrid, 0.0) == pytest.approx(exact, abs=2e-3)
    # A probe too big for the windows but not for the cages: only pockets.
    probe = 0.5 * (A / np.sqrt(2) - R + A * np.sqrt(3) / 2 - R)
    assert geometry.void_fraction(dgrid, probe) == 0.0
    assert geometry.void_fraction(dgrid, probe, pockets=True) > 0.0


def test_surface_area_isolated_and_overlapping_spheres():
    box = jmof.Crystal(np.array([6]), np.zeros((1, 3)), np.eye(3) * 20.0)
    probe = 1.86
    asa = geometry.accessible_surface_area(box, probe, 4000, radii={6: R})
    assert asa["A2"] == pytest.approx(4 * np.pi * (R + probe) ** 2, rel=1e-12)
    # Two spheres 4 Å apart, point probe: each loses a cap of height R - s/2.
    s = 4.0
    pair = jmof.Crystal(np.array([6, 6]), np.array([[0, 0, 0], [s, 0, 0]]), np.eye(3) * 20.0)
    asa = geometry.accessible_surface_area(pair, 0.0, 8000, radii={6: R})
    exact = 2 * (4 * np.pi * R**2 - 2 * np.pi * R * (R - s / 2))
    assert asa["A2"] == pytest.approx(exact, rel=5e-3)
    assert asa["m2_cm3"] == pytest.approx(asa["A2"] / pair.volume * 1e4)


def test_channel_dimensionality():
    n = 8
    empty = np.zeros((n, n, n), bool)
    line, plane, blob = empty.copy(), empty.copy(), empty.copy()
    line[:, 2, 3] = True
    plane[:, :, 5] = True
    blob[2:4, 2:4, 2:4] = True
    diagonal = empty.copy()
    for i in range(n):
        diagonal[i, i, 1] = True  # winds along a + b only through 26-connected steps
    for mask, dim, conn in ((line, 1, 6), (plane, 2, 6), (~empty, 3, 6), (blob, 0, 6),
                            (diagonal, 0, 6), (diagonal, 1, 26)):  # fmt: skip
        labels, dims = geometry.channels(mask, conn)
        assert dims[labels[mask]].max() == dim


def test_percolation_shortcuts_change_nothing():
    """The bisection that skips labelling outside the line/plane bounds against the plain one,
    on smooth random periodic fields; the bounds bracket the threshold."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for shape in ((12, 10, 14), (9, 9, 9), (16, 6, 11)):
        field = ndimage.gaussian_filter(rng.normal(size=shape), 1.5, mode="wrap")
        dgrid = geometry.DistanceGrid(field / field.std(), np.diag([5.0, 4.0, 6.0]))
        line, plane = geometry._percolation_bounds(dgrid.values)
        lo, hi = float(min(dgrid.values.min(), 0.0)), float(dgrid.values.max())
        while hi - lo > 1e-3:  # plain bisection, labelling at every level
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if geometry.percolates(dgrid, mid) else (lo, mid)
        expected = lo if lo >= 0 else -np.inf
        assert geometry.percolation_threshold(dgrid) == expected
        assert geometry.percolates(dgrid, line) and not geometry.percolates(dgrid, plane + 1e-9)


def _zeo(path: Path) -> dict:
    pytest.importorskip("pyzeo")
    out = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "_zeo.py"), str(path), "1.86", "2000"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compare(path: Path, spacing: float, pld_rel: float):
    ours = geometry.geometry(jmof.read(path), 1.86, spacing, helium=False)
    zeo = _zeo(path)
    assert ours.lcd == pytest.approx(zeo["lcd"], rel=0.03)
    assert ours.pld == pytest.approx(zeo["pld"], rel=pld_rel)
    assert ours.asa_m2_g == pytest.approx(zeo["asa_m2_g"], rel=0.03)
    assert ours.gvf == pytest.approx(zeo["gvf"], rel=0.03)
    assert ours.density == pytest.approx(zeo["density"], rel=1e-4)


def test_agrees_with_zeo_on_a_small_coremof(coremof_cif_dir):
    """ic7025158-file001 (12 atoms): CCDC radii and probe 1.86 Å on both sides, Zeo++ -ha."""
    _compare(Path(coremof_cif_dir) / "ic7025158-file001_clean.cif", 0.2, 0.01)


@pytest.mark.slow
def test_agrees_with_zeo_on_a_coremof(coremof_cif_dir):
    """DIYKED (180 atoms)."""
    _compare(Path(coremof_cif_dir) / "DIYKED_clean.cif", 0.2, 0.02)


def test_accessibility_follows_the_refined_pld(simple_cubic):
    """A probe between the grid's percolation threshold and the refined PLD / 2 passes the
    window: the accessible region must not vanish just because the grid missed the saddle."""
    crystal, _ = simple_cubic
    coarse = geometry.distance_grid(crystal, 0.4, {6: R})  # 25 points: none at the window
    r_g = geometry.percolation_threshold(coarse)
    pld, _ = geometry.largest_free_sphere(coarse, crystal=crystal, radii={6: R})
    probe = 0.5 * (r_g + pld / 2)
    assert r_g < probe < pld / 2
    assert not geometry.accessible(coarse, probe).any()
    region = geometry.accessible_region(coarse, probe, pld / 2, r_g)
    assert region.any() and (coarse.values[region] >= probe).all()
    assert not geometry.accessible_region(coarse, pld / 2 + 0.01, pld / 2, r_g).any()
