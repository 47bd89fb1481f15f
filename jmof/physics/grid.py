"""Energy grids: the guest–framework energy of a probe on a regular fractional grid.

A grid point ``(i, j, k)`` of an ``(nx, ny, nz)`` grid sits at fractional coordinates
``(i/nx, j/ny, k/nz)`` of the cell, the convention of GRIDAY (the grid generator MOFTransformer
uses). The points sample the cell volume uniformly, so averages over grid points are volume
averages.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jmof.physics import forcefield as ffm
from jmof.physics import host as hostm
from jmof.structure import Crystal


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EnergyGrid:
    """A probe's energy on a regular grid over the cell.

    Attributes:
        values: [nx, ny, nz] K, energy / k_B at fractional ``(i/nx, j/ny, k/nz)``.
        cell: [3, 3] Å, lattice vectors (rows) of the cell the grid spans.
        guest: probe name (static).  forcefield: framework force field name (static).
    """

    values: jax.Array
    cell: jax.Array
    guest: str = dataclasses.field(default="CH4", metadata=dict(static=True))
    forcefield: str = dataclasses.field(default="UFF", metadata=dict(static=True))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.values.shape)

    @property
    def spacing(self) -> np.ndarray:
        """[3] Å, distance between neighbouring points along a, b, c."""
        return np.linalg.norm(np.asarray(self.cell), axis=1) / np.asarray(self.shape)

    def points(self) -> np.ndarray:
        """[nx·ny·nz, 3] fractional coordinates of the points, C order (z fastest)."""
        return grid_points(self.shape)

    def save(self, path: str | Path) -> None:
        """Write ``.npz`` with values (float32), cell, guest and force field."""
        np.savez_compressed(
            path,
            values=np.asarray(self.values, np.float32),
            cell=np.asarray(self.cell, np.float64),
            guest=self.guest,
            forcefield=self.forcefield,
        )

    @classmethod
    def load(cls, path: str | Path) -> EnergyGrid:
        with np.load(path) as data:
            return cls(
                values=jnp.asarray(data["values"]),
                cell=jnp.asarray(data["cell"]),
                guest=str(data["guest"]),
                forcefield=str(data["forcefield"]),
            )


def grid_shape(cell: np.ndarray, spacing: float) -> tuple[int, int, int]:
    """Points along a, b, c so that neighbouring points are at most ``spacing`` Å apart along each
    lattice vector."""
    if not spacing > 0:
        raise ValueError(f"grid spacing must be positive, got {spacing}")
    lengths = np.linalg.norm(np.asarray(cell, np.float64), axis=1)
    return tuple(max(1, math.ceil(length / spacing - 1e-9)) for length in lengths)


def grid_points(shape: tuple[int, int, int]) -> np.ndarray:
    """[prod(shape), 3] fractional coordinates ``(i/nx, j/ny, k/nz)`` in C order."""
    axes = [np.arange(n) / n for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def energy_grid(
    crystal: Crystal,
    guest: str | ffm.Guest = "CH4",
    forcefield: str | ffm.ForceField = "UFF",
    *,
    spacing: float = 0.5,
    shape: tuple[int, int, int] | None = None,
    chunk: int | None = None,
    progress: bool = False,
) -> EnergyGrid:
    """Energy of a single-site probe at every point of a regular grid over the cell.

    Computed in chunks of points against the framework replicated for the cutoff (see
    ``jmof.physics.host``), so memory stays bounded for any cell; each chunk is one jit-compiled
    call. Differentiable with respect to ``crystal`` and ``forcefield`` parameters.

    Args:
        crystal: the framework.
        guest: a single-site guest (``"CH4"``, ``"Kr"``, ``"Xe"``, ``"H2"``, ``"He"``) or ``Guest``.
        forcefield: ``"UFF"``, ``"DREIDING"`` or a ``ForceField`` (cutoff and shift with it).
        spacing: Å, largest spacing between points along each lattice vector (if no ``shape``).
        shape: ``(nx, ny, nz)`` points; overrides ``spacing``.
        chunk: points per compiled call.
        progress: progress bar over chunks.

    Returns:
        ``EnergyGrid`` with values in K. Points inside atoms carry very large energies (the pair
        distance is floored at 0.01 Å, giving ~1e30 K rather than inf).
    """
    g = ffm.guest(guest)
    if not g.is_point:
        raise ValueError(
            f"energy_grid needs a single-site probe; {g.name} has {g.n_sites} sites "
            "(use jmof.physics.henry_coefficient with method='direct')"
        )
    ff = ffm.forcefield(forcefield)
    shape = tuple(int(n) for n in shape) if shape is not None else grid_shape(crystal.cell, spacing)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid shape must be three positive integers, got {shape}")
    h = hostm.host(crystal, ff)
    points = jnp.asarray(grid_points(shape), dtype=h.frac.dtype)
    values = hostm.energies(
        h, g, points, chunk=chunk, progress=progress, description=f"{g.name} grid"
    )
    return EnergyGrid(values.reshape(shape), jnp.asarray(crystal.cell), g.name, ff.name)


def interpolate(grid: EnergyGrid, frac: jax.Array, order: int = 1) -> jax.Array:
    """Periodic interpolation of grid values at fractional coordinates.

    Args:
        grid: the grid.
        frac: [p, 3] fractional coordinates (any real values: the grid is periodic).
        order: 1 for trilinear; 3 for an interpolating cubic B-spline (C² smooth, for
            gradients; coefficients by an exact FFT prefilter of the periodic grid).

    Returns:
        [p] interpolated values. Very large values (inside atoms) should be capped before cubic
        interpolation (see ``capped``), or their ringing spreads into the pores.
    """
    values = jnp.asarray(grid.values)
    if order == 1:
        return _trilinear(values, frac)
    if order == 3:
        return _cubic(_bspline_coefficients(values), frac)
    raise ValueError(f"order must be 1 (trilinear) or 3 (cubic B-spline), got {order}")


def capped(grid: EnergyGrid, cap: float) -> EnergyGrid:
    """The grid with values above ``cap`` (K) set to ``cap``."""
    return dataclasses.replace(grid, values=jnp.minimum(grid.values, cap))


def _corner_weights(values, frac):
    shape = jnp.asarray(values.shape)
    x = frac * shape
    base = jnp.floor(x)
    t = x - base
    return base.astype(jnp.int32), t, shape


def _trilinear(values: jax.Array, frac: jax.Array) -> jax.Array:
    base, t, shape = _corner_weights(values, frac)
    out = 0.0
    for corner in np.ndindex(2, 2, 2):
        c = jnp.asarray(corner)
        idx = (base + c) % shape
        w = jnp.prod(jnp.where(c == 1, t, 1.0 - t), axis=-1)
        out = out + w * values[idx[:, 0], idx[:, 1], idx[:, 2]]
    return out


def _bspline_kernel(t: jax.Array) -> list[jax.Array]:
    """Cubic B-spline weights of the 4 nodes at offsets -1, 0, 1, 2 for t in [0, 1)."""
    return [
        (1 - t) ** 3 / 6.0,
        (3 * t**3 - 6 * t**2 + 4) / 6.0,
        (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6.0,
        t**3 / 6.0,
    ]


def _bspline_coefficients(values: jax.Array) -> jax.Array:
    """Coefficients c with Σ_k c_k B(x - k) = values at every node: along each axis the node
    values are c * [1/6, 4/6, 1/6] (circular), inverted exactly in Fourier space."""
    coef = jnp.fft.fftn(values)
    for axis, n in enumerate(values.shape):
        k = jnp.arange(n)
        transfer = (4.0 + 2.0 * jnp.cos(2.0 * jnp.pi * k / n)) / 6.0
        shape = [1, 1, 1]
        shape[axis] = n
        coef = coef / transfer.reshape(shape)
    return jnp.real(jnp.fft.ifftn(coef)).astype(values.dtype)


def _cubic(coef: jax.Array, frac: jax.Array) -> jax.Array:
    base, t, shape = _corner_weights(coef, frac)
    weights = [_bspline_kernel(t[:, d]) for d in range(3)]
    out = 0.0
    for i, j, k in np.ndindex(4, 4, 4):
        idx = (base + jnp.asarray([i - 1, j - 1, k - 1])) % shape
        w = weights[0][i] * weights[1][j] * weights[2][k]
        out = out + w * coef[idx[:, 0], idx[:, 1], idx[:, 2]]
    return out


def read_griday(stem: str | Path) -> EnergyGrid:
    """Read a GRIDAY energy grid: ``stem.grid`` (cell lengths, angles, grid numbers) and
    ``stem.griddata16`` (MOFTransformer's pickled float16 copy, values clipped to ±6e4 K) or
    ``stem.griddata`` (GRIDAY's raw float32). GRIDAY fills x fastest, then y, then z.

    The cell is rebuilt from lengths and angles (a along x, b in the xy plane).
    """
    from ase.geometry import cellpar_to_cell

    stem = Path(stem)
    header = {}
    for line in Path(f"{stem}.grid").read_text().splitlines():
        parts = line.split()
        if parts:
            header[parts[0]] = [float(v) for v in parts[1:]]
    try:
        lengths, angles = header["CELL_PARAMETERS"], header["CELL_ANGLES"]
        n = [int(v) for v in header["GRID_NUMBERS"]]
    except KeyError as err:
        raise ValueError(f"{stem}.grid: missing {err.args[0]}") from None
    if Path(f"{stem}.griddata16").exists():
        with open(f"{stem}.griddata16", "rb") as f:
            data = np.asarray(pickle.load(f), dtype=np.float32)
    else:
        data = np.fromfile(f"{stem}.griddata", dtype=np.float32)
    if data.size != n[0] * n[1] * n[2]:
        raise ValueError(f"{stem}: {data.size} values for a {n} grid")
    values = data.reshape(n[2], n[1], n[0]).transpose(2, 1, 0)
    return EnergyGrid(jnp.asarray(values), jnp.asarray(cellpar_to_cell(lengths + angles)))
