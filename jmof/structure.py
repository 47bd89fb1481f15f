"""Crystal structures: the immutable ``Crystal`` pytree, readers, writers and validation.

Units: positions and cell in Å (Cartesian), masses in amu, density in g/cm³.

``read`` turns a file into a ``Crystal`` or raises ``StructureError`` with a message that starts
with the file name and says what is wrong; ``validate`` applies the same physical checks to a
``Crystal`` from anywhere. CIFs are tokenised by pymatgen (``CifFile``, ``SymmOp``, ``Lattice``)
and expanded to P1 here, in file order, with the checks pymatgen leaves out (it drops or guesses
atoms it cannot name, reads ``P 21/c`` without symmetry operations as P1, and merges sites in
O(n²) Python loops). Every other format goes through ``ase.io.read``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import ase
    import pymatgen.core
    from pymatgen.io.cif import CifBlock, CifFile

_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 amu/Å³ in g/cm³


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Crystal:
    """A periodic (or partly periodic) arrangement of atoms.

    Attributes:
        species: [n_atoms] int, atomic numbers Z.
        positions: [n_atoms, 3] Å, Cartesian positions (not necessarily wrapped into the cell).
        cell: [3, 3] Å, rows are the lattice vectors a, b, c.
        pbc: (3,) bool, periodicity along a, b, c (static: part of the pytree structure).
    """

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool] = dataclasses.field(
        default=(True, True, True), metadata=dict(static=True)
    )

    @property
    def n_atoms(self) -> int:
        return int(np.shape(self.species)[0])

    @property
    def volume(self) -> float:
        """Cell volume in Å³ (absolute value of the determinant)."""
        return float(abs(np.linalg.det(np.asarray(self.cell, dtype=np.float64))))

    @property
    def frac_positions(self) -> np.ndarray:
        """[n_atoms, 3] fractional coordinates (unwrapped)."""
        cell = np.asarray(self.cell, dtype=np.float64)
        return np.linalg.solve(cell.T, np.asarray(self.positions, dtype=np.float64).T).T

    @property
    def masses(self) -> np.ndarray:
        """[n_atoms] amu, standard atomic weights."""
        from ase.data import atomic_masses

        return atomic_masses[np.asarray(self.species)]

    @property
    def density(self) -> float:
        """Mass density in g/cm³."""
        return float(self.masses.sum() / self.volume * _AMU_PER_A3_TO_G_PER_CM3)

    @property
    def formula(self) -> str:
        """Hill-ordered reduced-free formula of the cell, e.g. ``C24H12O13Zn4``."""
        from ase.formula import Formula
        from ase.symbols import Symbols

        return Formula(str(Symbols(np.asarray(self.species)))).format("hill")

    @property
    def perpendicular_widths(self) -> np.ndarray:
        """[3] Å, distance between opposite faces of the cell (the spacing of the lattice
        planes spanned by b, c; c, a; a, b). A sphere of radius r fits the cell without touching
        its own periodic image along every axis iff all widths exceed 2r."""
        cell = np.asarray(self.cell, dtype=np.float64)
        return self.volume / np.linalg.norm(
            np.cross(np.roll(cell, -1, 0), np.roll(cell, -2, 0)), axis=1
        )

    def repeat(self, repeats: Sequence[int]) -> Crystal:
        """The ``(na, nb, nc)`` supercell. Atom ``k`` of image ``m`` is at index
        ``m * n_atoms + k``, images in C order over (a, b, c)."""
        repeats = tuple(int(n) for n in repeats)
        if len(repeats) != 3 or min(repeats) < 1:
            raise ValueError(f"repeats must be three positive integers, got {repeats}")
        cell = np.asarray(self.cell, np.float64)
        grid = np.stack(np.meshgrid(*[np.arange(n) for n in repeats], indexing="ij"), -1)
        offsets = grid.reshape(-1, 3) @ cell
        positions = (offsets[:, None, :] + np.asarray(self.positions)[None]).reshape(-1, 3)
        return Crystal(
            species=np.tile(np.asarray(self.species), len(offsets)),
            positions=positions,
            cell=cell * np.asarray(repeats, np.float64)[:, None],
            pbc=self.pbc,
        )

    # --- conversions --------------------------------------------------------------------------

    @classmethod
    def from_ase(cls, atoms: ase.Atoms) -> Crystal:
        # Copies: ASE updates its arrays in place (optimisers, MD), a Crystal must not change.
        return cls(
            species=np.array(atoms.numbers, dtype=np.int32),
            positions=np.array(atoms.positions, dtype=np.float64),
            cell=np.array(atoms.cell.array, dtype=np.float64),
            pbc=tuple(bool(p) for p in atoms.pbc),
        )

    def to_ase(self) -> ase.Atoms:
        import ase

        return ase.Atoms(
            numbers=np.asarray(self.species),
            positions=np.asarray(self.positions),
            cell=np.asarray(self.cell),
            pbc=self.pbc,
        )

    @classmethod
    def from_pymatgen(cls, structure: pymatgen.core.Structure) -> Crystal:
        """From an ordered pymatgen ``Structure`` (always periodic in all three directions)."""
        return cls(
            species=np.asarray([site.specie.Z for site in structure], dtype=np.int32),
            positions=np.asarray(structure.cart_coords, dtype=np.float64),
            cell=np.asarray(structure.lattice.matrix, dtype=np.float64),
            pbc=(True, True, True),
        )

    def to_pymatgen(self) -> pymatgen.core.Structure:
        from pymatgen.core import Lattice, Structure

        return Structure(
            Lattice(np.asarray(self.cell), pbc=self.pbc),
            np.asarray(self.species).tolist(),
            np.asarray(self.positions),
            coords_are_cartesian=True,
        )


# --- errors -----------------------------------------------------------------------------------


class StructureError(ValueError):
    """A structure file or ``Crystal`` that cannot be used; the message names the file and why."""


class StructureWarning(UserWarning):
    """Something in a structure file that was resolved by a documented choice (e.g. which block)."""


# --- rules ------------------------------------------------------------------------------------

_MIN_THICKNESS = 0.1  # Å; a periodic cell thinner than this along any lattice direction is flat
_MIN_RADII_SUM = 1.0  # Å; floor on r_i + r_j in the overlap rule (H–H would otherwise be 0.31 Å)
_OCCUPANCY_TOL = 1e-3  # |occupancy - 1| below this counts as fully occupied
_SYMMETRY_TOL = 1e-4  # fractional; symmetry images closer than this are one atom (as pymatgen)
_SITE_TOL = 0.01  # Å; atoms closer than this share a site when resolving disorder
_DISORDER_MODES = ("refuse", "majority")
_AXES = ("a", "b", "c")


# --- public API -------------------------------------------------------------------------------


def read(
    path: str | os.PathLike,
    *,
    block: str | None = None,
    disorder: str = "refuse",
    min_distance_factor: float = 0.5,
    validate: bool = True,
) -> Crystal:
    """Read a structure file into a ``Crystal``.

    CIF (suffix ``.cif``, any case): decoded here (UTF-8 with or without BOM, CRLF/CR line
    endings, Latin-1 text tolerated), tokenised by pymatgen and expanded to P1 with the symmetry
    operations of the file (or of its space group). Atoms come in file order, each atom site
    followed by its symmetry images, wrapped into [0, 1) fractional coordinates; the cell is
    ``pymatgen.core.Lattice.from_parameters`` of the cell parameters (c along z). Other formats
    (extxyz, xyz, POSCAR/CONTCAR/.vasp, anything ``ase.io.read`` knows) are read by ASE (first
    frame).

    Args:
        path: the file. A missing or unreadable file raises ``OSError`` as usual.
        block: CIF data block to read (name after ``data_``). Default: the first block with
            atoms, with a ``StructureWarning`` when the file holds several blocks.
        disorder: what to do with partially occupied CIF sites. ``"refuse"`` raises;
            ``"majority"`` keeps on each site (atoms within 0.01 Å) the species with the largest
            summed occupancy and drops sites whose total occupancy is below 0.5.
        min_distance_factor: overlap rule of ``validate``; 0 turns the overlap check off.
        validate: run ``validate`` on the result (cell, coordinates, overlaps). Problems that
            make a file unreadable (truncation, no cell, unknown elements, disorder) are errors
            either way.

    Returns:
        The crystal. CIFs are periodic along a, b and c; other formats keep ASE's ``pbc``.

    Raises:
        StructureError: the file cannot be turned into a valid crystal; the message starts with
            the file name and the original exception, if any, is chained.
    """
    if disorder not in _DISORDER_MODES:
        raise ValueError(f"disorder must be one of {_DISORDER_MODES}, got {disorder!r}")
    if not min_distance_factor >= 0:
        raise ValueError(f"min_distance_factor must be >= 0, got {min_distance_factor!r}")
    path = Path(path)
    name = os.fspath(path)
    labels = None
    if path.suffix.lower() == ".cif":
        crystal, labels = _read_cif(path, name, block=block, disorder=disorder)
    else:
        if block is not None:
            raise ValueError(f"block= selects a CIF data block; {name} is not a .cif file")
        crystal = _read_ase(path, name)
    if validate:
        _validate(crystal, name, min_distance_factor, labels)
    return crystal


def write(path: str | os.PathLike, crystal: Crystal) -> None:
    """Write ``crystal`` to ``path``: CIF (P1, by pymatgen) for ``.cif``, else ``ase.io.write``.

    ``.xyz`` and ``.extxyz`` are written as extended XYZ (cell and pbc kept); any other name goes
    to ASE's format guess (``POSCAR``, ``.vasp``, ...). A CIF stores cell parameters, not the cell
    matrix, so ``read`` gives back the same lattice in pymatgen's orientation and the same
    fractional coordinates (to 1e-8), wrapped into [0, 1).
    """
    path = Path(path)
    name = os.fspath(path)
    if path.suffix.lower() == ".cif":
        if not all(crystal.pbc):
            raise StructureError(
                f"{name}: a CIF describes a crystal periodic along a, b and c, "
                f"but this one has pbc={crystal.pbc}; write .extxyz instead"
            )
        from pymatgen.io.cif import CifWriter

        try:
            with _quiet():
                text = str(CifWriter(crystal.to_pymatgen()))
        except Exception as err:
            raise StructureError(f"{name}: cannot write CIF: {_describe_error(err)}") from err
        path.write_text(text, encoding="utf-8")
        return

    import ase.io

    fmt = "extxyz" if path.suffix.lower() in (".xyz", ".extxyz") else None
    try:
        ase.io.write(path, crystal.to_ase(), format=fmt)
    except OSError:
        raise
    except Exception as err:
        raise StructureError(f"{name}: cannot write: {_describe_error(err)}") from err


def validate(
    crystal: Crystal, name: str = "<crystal>", *, min_distance_factor: float = 0.5
) -> None:
    """Raise ``StructureError`` (message ``"{name}: ..."``) unless ``crystal`` is physically usable.

    Checks, in order:

    - at least one atom; ``species`` [n], ``positions`` [n, 3], ``cell`` [3, 3];
    - every atomic number in 1..118; every position finite;
    - a finite cell, and along the periodic directions a non-degenerate lattice: each periodic
      lattice vector non-zero and the periodic cell at least 0.1 Å thick along each of them
      (distance between opposite faces; for a 3D cell, volume / area of the opposite face).
      This catches zero lengths, coplanar vectors and angles of 0° or 180°. Left-handed cells
      (negative determinant) are fine; the volume is ``|det(cell)|``. Non-periodic directions
      may have a zero (or any finite) cell vector.
    - no two atoms, periodic images included, closer than
      ``min_distance_factor * max(r_i + r_j, 1.0 Å)`` with ``r`` the covalent radii of
      ``ase.data.covalent_radii`` (Cordero et al. 2008). At the default 0.5 this flags C–C
      below 0.76 Å, O–H below 0.5 Å, H–H below 0.5 Å, Zn–O below 0.94 Å, i.e. duplicated
      atoms and unresolved disorder, and stays well below real bonds (H₂ 0.74 Å, O–H 0.96 Å,
      C≡C 1.20 Å, metal hydrides >= 1.5 Å, Cr–Cr quintuple bond 1.80 Å). The 1.0 Å floor on
      the radii sum keeps H–H from being allowed down to 0.31 Å. ``min_distance_factor=0``
      turns the check off. Periodic images come from ``vesin``, exact for any cell shape.

    Args:
        crystal: the crystal to check.
        name: how messages refer to it (a file name, a dataset key).
        min_distance_factor: see above.
    """
    if not min_distance_factor >= 0:
        raise ValueError(f"min_distance_factor must be >= 0, got {min_distance_factor!r}")
    _validate(crystal, name, min_distance_factor, None)


# --- validation -------------------------------------------------------------------------------


def _validate(crystal: Crystal, name: str, factor: float, labels: list[str] | None) -> None:
    species = np.asarray(crystal.species)
    positions = np.asarray(crystal.positions, dtype=np.float64)
    cell = np.asarray(crystal.cell, dtype=np.float64)
    if species.ndim != 1 or positions.shape != (species.shape[0], 3) or cell.shape != (3, 3):
        raise StructureError(
            f"{name}: inconsistent shapes: species {species.shape}, positions {positions.shape}, "
            f"cell {cell.shape}; expected [n], [n, 3] and [3, 3]"
        )
    if species.shape[0] == 0:
        raise StructureError(f"{name}: no atoms")
    if not np.issubdtype(species.dtype, np.integer):
        raise StructureError(f"{name}: species must be integer atomic numbers, not {species.dtype}")

    unknown = np.flatnonzero((species < 1) | (species > 118))
    if unknown.size:
        i = int(unknown[0])
        raise StructureError(
            f"{name}: atom {_atom(i, species, labels)} has unknown element Z={int(species[i])}; "
            f"atomic numbers must lie in 1..118 ({unknown.size} atom(s) affected)"
        )
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        i = int(bad[0])
        xyz = ", ".join(f"{x:g}" for x in positions[i])
        raise StructureError(
            f"{name}: atom {_atom(i, species, labels)} has a non-finite position ({xyz}) Å "
            f"({bad.size} atom(s) affected)"
        )
    _check_cell(cell, crystal.pbc, name)
    if factor > 0:
        _check_overlaps(species, positions, cell, crystal.pbc, name, factor, labels)


def _check_cell(cell: np.ndarray, pbc: tuple[bool, bool, bool], name: str) -> None:
    """Finite cell; along the periodic directions, non-zero vectors and a cell >= 0.1 Å thick."""
    if not np.isfinite(cell).all():
        raise StructureError(f"{name}: the cell has non-finite entries: {cell.tolist()}")
    periodic = [k for k in range(3) if pbc[k]]
    if not periodic:
        return
    vectors = cell[periodic]
    gram = vectors @ vectors.T
    measure = np.sqrt(max(np.linalg.det(gram), 0.0))  # length, area or volume
    thickness = []
    for m in range(len(periodic)):
        others = [o for o in range(len(periodic)) if o != m]
        face = np.sqrt(max(np.linalg.det(gram[np.ix_(others, others)]), 0.0)) if others else 1.0
        thickness.append(measure / face if face > 0 else 0.0)
    m = int(np.argmin(thickness))
    if thickness[m] >= _MIN_THICKNESS:
        return
    axis = _AXES[periodic[m]]
    summary = _cell_summary(cell, periodic)
    if len(periodic) == 3:
        head = f"cell volume is {measure:.3g} Å³ ({summary})"
    else:
        head = f"the periodic cell vectors are degenerate ({summary}, pbc={tuple(pbc)})"
    raise StructureError(
        f"{name}: {head}: the cell is {thickness[m]:.3g} Å thick along {axis}; lattice vectors "
        f"must be non-zero and not coplanar (at least {_MIN_THICKNESS} Å thick in each "
        "periodic direction)"
    )


def _cell_summary(cell: np.ndarray, periodic: list[int]) -> str:
    lengths = np.linalg.norm(cell, axis=1)
    parts = [f"{_AXES[k]}={lengths[k]:.4g} Å" for k in periodic]
    if len(periodic) == 3:
        for (i, j), greek in zip(((1, 2), (0, 2), (0, 1)), "αβγ", strict=True):
            denom = lengths[i] * lengths[j]
            cos = np.clip(cell[i] @ cell[j] / denom, -1, 1) if denom > 0 else np.nan
            parts.append(f"{greek}={np.degrees(np.arccos(cos)):.4g}°")
    return ", ".join(parts)


def _check_overlaps(
    species: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: tuple[bool, bool, bool],
    name: str,
    factor: float,
    labels: list[str] | None,
) -> None:
    """Pairs (periodic images included) closer than ``factor * max(r_i + r_j, 1.0 Å)``."""
    import vesin
    from ase.data import covalent_radii

    radii = covalent_radii[species]
    cutoff = factor * max(_MIN_RADII_SUM, 2.0 * float(radii.max()))
    neighbors = vesin.NeighborList(cutoff=cutoff, full_list=False)
    i, j, shifts, distances = neighbors.compute(
        points=positions, box=cell, periodic=list(pbc), quantities="ijSd"
    )
    limits = factor * np.maximum(radii[i] + radii[j], _MIN_RADII_SUM)
    close = np.flatnonzero(distances < limits)
    if close.size == 0:
        return
    k = close[np.argmin(distances[close])]
    a, b, d, limit = int(i[k]), int(j[k]), float(distances[k]), float(limits[k])
    shift = tuple(int(s) for s in shifts[k])
    pair = _pair_name(species[a], species[b])
    rule = f"the minimum for {pair} is {limit:.2f} Å = {factor:g} × max(r_i + r_j, 1 Å)"
    more = f"; {close.size} pairs are too close" if close.size > 1 else ""
    fix = (
        "Duplicated atoms, unresolved disorder or a wrong cell? Lower min_distance_factor "
        "or pass validate=False to load it anyway"
    )
    if a == b:
        raise StructureError(
            f"{name}: atom {_atom(a, species, labels)} is {d:.3f} Å from its own periodic image "
            f"(lattice shift {shift}): the cell is too small; {rule}{more}. {fix}"
        )
    where = f" (across the periodic boundary, image shift {shift})" if any(shift) else ""
    raise StructureError(
        f"{name}: atoms {_atom(a, species, labels)} and {_atom(b, species, labels)} are "
        f"{d:.3f} Å apart{where}; {rule}{more}. {fix}"
    )


def _atom(i: int, species: np.ndarray, labels: list[str] | None) -> str:
    from ase.data import chemical_symbols

    z = int(species[i])
    symbol = chemical_symbols[z] if 1 <= z <= 118 else f"Z={z}"
    if labels is not None and labels[i] != symbol:
        return f"{i} ({symbol}, site {labels[i]})"
    return f"{i} ({symbol})"


def _pair_name(z1: int, z2: int) -> str:
    from ase.data import chemical_symbols

    return f"{chemical_symbols[int(z1)]}–{chemical_symbols[int(z2)]}"


# --- ASE formats ------------------------------------------------------------------------------


def _read_ase(path: Path, name: str) -> Crystal:
    import ase.io
    from ase.io.formats import filetype

    if path.stat().st_size == 0:  # also raises the usual OSError for a missing file
        raise StructureError(f"{name}: the file is empty")
    try:
        fmt = filetype(str(path))
    except Exception:
        fmt = None
    what = f"as {fmt}" if fmt else "(unknown format)"
    try:
        atoms = ase.io.read(path, index=0, format=fmt)
        crystal = Crystal.from_ase(atoms)
    except Exception as err:
        raise StructureError(f"{name}: cannot read {what}: {_describe_error(err)}") from err
    return crystal


def _describe_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    if len(first) > 200:
        first = first[:200] + "..."
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


@contextlib.contextmanager
def _quiet():
    """Silence pymatgen's warnings: everything it would warn about is checked here instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- CIF --------------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"
# C0 control bytes other than tab, LF, VT, FF, CR: never in a text file.
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32), 127])
_HIGH_BYTES = bytes(range(128, 256))
_UNCERTAINTY = re.compile(r"\(\d*\)$")
_TOKEN = re.compile(r"""'[^']*'(?=\s|$)|"[^"]*"(?=\s|$)|\S+""")
# Symbols that pymatgen maps to something other than their letters (OH and OH2 are dropped,
# Wat becomes O, NO3 becomes N): group names, not elements.
_GROUP_SYMBOLS = re.compile(r"(OH|NO3|Wat|wat)")
_CELL_TAGS = (
    "_cell_length_a",
    "_cell_length_b",
    "_cell_length_c",
    "_cell_angle_alpha",
    "_cell_angle_beta",
    "_cell_angle_gamma",
)
_SYMOP_TAGS = (
    "_symmetry_equiv_pos_as_xyz",
    "_space_group_symop_operation_xyz",
    "_space_group_symop.operation_xyz",
)
_SPACE_GROUP_TAGS = (
    "_symmetry_space_group_name_h-m",
    "_symmetry_space_group_name_h_m",
    "_space_group_name_h-m_alt",
    "_space_group.name_h-m_alt",
    "_symmetry_space_group_name_hall",
    "_space_group_name_hall",
)
_SPACE_GROUP_NUMBER_TAGS = ("_space_group_it_number", "_symmetry_int_tables_number")


def _read_cif(
    path: Path, name: str, *, block: str | None, disorder: str
) -> tuple[Crystal, list[str]]:
    text = _cif_text(path.read_bytes(), name)
    cif = _cif_tokens(text, name)
    data_block = _cif_block(cif, name, block)
    data = {key.lower(): value for key, value in data_block.data.items()}
    cell = _cif_cell(data, name)
    labels, species, frac, occupancy = _cif_atoms(data, name)

    partial = np.flatnonzero(occupancy < 1.0 - _OCCUPANCY_TOL)
    if partial.size and disorder == "refuse":
        first = int(partial[0])
        raise StructureError(
            f"{name}: {partial.size} partially occupied atom site(s) (first: {labels[first]} "
            f"occupancy {occupancy[first]:g}); the structure is disordered. Pass "
            'disorder="majority" to keep the majority species on each site and drop sites '
            "with total occupancy < 0.5"
        )

    rotations, translations = _cif_symmetry(data_block, data, name)
    frac, row = _expand(frac, rotations, translations)
    species, occupancy = species[row], occupancy[row]
    labels = [labels[r] for r in row]
    if partial.size:
        keep = _majority(frac, cell, species, occupancy)
        frac, species = frac[keep], species[keep]
        labels = [labels[k] for k in keep]
        if not len(keep):
            raise StructureError(
                f"{name}: no atoms left after dropping sites with total occupancy < 0.5"
            )
    crystal = Crystal(
        species=species.astype(np.int32),
        positions=frac @ cell,
        cell=cell,
        pbc=(True, True, True),
    )
    return crystal, labels


def _cif_text(raw: bytes, name: str) -> str:
    """Bytes to CIF text: BOM stripped, line endings normalised; binary files refused."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw.strip():
        raise StructureError(f"{name}: the file is empty")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise StructureError(
            f"{name}: binary file (NUL byte at offset {nul}), not a CIF; CIFs are text"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # CIF 1.1 is ASCII and CIF 2.0 UTF-8, but older files carry Latin-1 names in comments and
        # text fields. Accept those; refuse what looks binary (control bytes, many high bytes).
        controls = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
        high = len(raw) - len(raw.translate(None, _HIGH_BYTES))
        if controls or high > 0.05 * len(raw):
            line = raw.count(b"\n", 0, err.start) + 1
            raise StructureError(
                f"{name}: binary file (byte 0x{raw[err.start]:02x} on line {line} is not UTF-8 "
                "text), not a CIF"
            ) from err
        text = raw.decode("latin-1")
    # pymatgen drops non-ASCII characters, which would turn a Unicode minus into a plus.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2212", "-")


def _cif_tokens(text: str, name: str) -> CifFile:
    from pymatgen.io.cif import CifFile

    reason = _truncated_end(text)
    if reason:
        raise StructureError(f"{name}: {reason}")
    try:
        with _quiet():
            return CifFile.from_str(text)
    except Exception as err:
        # pymatgen's messages for a bad loop are "zip() argument 2 is longer than argument 1"
        # or a ZeroDivisionError; find the loop ourselves and say what is wrong with it.
        reason = _bad_loop(text) or f"malformed CIF ({_describe_error(err)})"
        raise StructureError(f"{name}: {reason}") from err


def _truncated_end(text: str) -> str | None:
    """Why the text looks cut off (a tag or loop_ with nothing after it, an open text field)."""
    if len(re.findall(r"^;", text, flags=re.MULTILINE)) % 2:
        return "a ;-delimited text field is never closed: the file is truncated"
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith(";") or "'" in stripped or '"' in stripped:
            return None
        last = stripped.split()[-1]
        if last.lower() == "loop_" or (last.startswith("_") and last.lower() != "_eof"):
            return f"the file ends with {last} and no values after it: the file is truncated"
        return None
    return None


def _bad_loop(text: str) -> str | None:
    """Describe the first loop whose value count is not a multiple of its column count."""
    tokens: list[tuple[str, int]] = []
    in_field = False
    for number, line in enumerate(text.split("\n"), start=1):
        if in_field:
            if line.startswith(";"):
                in_field = False
                tokens.append(("<text>", number))
            continue
        if line.startswith(";"):
            in_field = True
            continue
        for match in _TOKEN.finditer(line):
            token = match.group()
            if token.startswith("#"):
                break
            tokens.append((token, number))

    def ends_values(token: str) -> bool:
        lower = token.lower()
        return token.startswith("_") or lower == "loop_" or lower.startswith("data_")

    k = 0
    while k < len(tokens):
        if tokens[k][0].lower() != "loop_":
            k += 1
            continue
        start_line = tokens[k][1]
        k += 1
        tags = []
        while k < len(tokens) and tokens[k][0].startswith("_"):
            tags.append(tokens[k][0])
            k += 1
        values = []
        while k < len(tokens) and not ends_values(tokens[k][0]):
            values.append(tokens[k])
            k += 1
        if not tags or (values and len(values) % len(tags) == 0):
            continue
        atoms = any(tag.lower().startswith("_atom_site_") for tag in tags)
        kind = "atom loop" if atoms else f"loop of {tags[0]}"
        columns = f"{len(tags)} columns ({', '.join(tags[:3])}{', ...' if len(tags) > 3 else ''})"
        if not values:
            return f"empty {kind} (line {start_line}): {columns} and no values; truncated file?"
        rows, extra = divmod(len(values), len(tags))
        return (
            f"incomplete {kind} (line {start_line}): {columns} but {len(values)} values, "
            f"{rows} full row(s) and {extra} value(s) left over (last on line {values[-1][1]}); "
            "the file is truncated or a row is missing a value"
        )
    return None


def _cif_block(cif: CifFile, name: str, block: str | None) -> CifBlock:
    blocks = list(cif.data.values())
    if not blocks:
        raise StructureError(f"{name}: no data_ block: this is not a CIF (or it is truncated)")
    names = [b.header for b in blocks]
    listing = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    if block is not None:
        chosen = [b for b in blocks if b.header == block] or [
            b for b in blocks if b.header.lower() == block.lower()
        ]
        if not chosen:
            raise StructureError(
                f"{name}: no data block named {block!r}; the file has {len(blocks)}: {listing}"
            )
        return chosen[0]
    with_atoms = [b for b in blocks if _has_atoms(b)]
    if not with_atoms:
        raise StructureError(
            f"{name}: no atoms: no data block has an _atom_site_ loop (truncated file?)"
        )
    chosen = with_atoms[0]
    if len(blocks) > 1:
        warnings.warn(
            f"{name}: {len(blocks)} data blocks ({listing}); read {chosen.header!r}, the first "
            "with atoms. Pass block=NAME to read another.",
            StructureWarning,
            stacklevel=4,
        )
    return chosen


def _has_atoms(data_block: CifBlock) -> bool:
    keys = {key.lower() for key in data_block.data}
    return bool(
        keys
        & {"_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_cartn_x"}
    )


def _cif_number(value, tag: str, name: str) -> float:
    if isinstance(value, list):
        if len(value) != 1:
            raise StructureError(f"{name}: {tag} has {len(value)} values, expected one")
        value = value[0]
    text = value.strip()
    if text in ("", "?", "."):
        raise StructureError(f"{name}: {tag} is {text or 'empty'!r}: no value given")
    try:
        return float(_UNCERTAINTY.sub("", text))
    except ValueError:
        raise StructureError(f"{name}: {tag} is {text!r}, not a number") from None


def _cif_cell(data: dict, name: str) -> np.ndarray:
    """[3, 3] Å cell from the six cell parameters (pymatgen's orientation: c along z)."""
    from pymatgen.core import Lattice

    missing = [tag for tag in _CELL_TAGS if tag not in data]
    if missing:
        raise StructureError(f"{name}: no unit cell: {', '.join(missing)} missing")
    values = [_cif_number(data[tag], tag, name) for tag in _CELL_TAGS]
    for axis, length in zip(_AXES, values[:3], strict=True):
        if not np.isfinite(length):
            raise StructureError(f"{name}: cell length {axis} is {length} Å: not a finite number")
        if length == 0:
            raise StructureError(
                f"{name}: cell volume is 0.0 Å³ ({axis}=0.0 Å): cell lengths must be positive"
            )
        if length < 0:
            raise StructureError(
                f"{name}: cell length {axis} is {length:g} Å: cell lengths must be positive"
            )
    for angle, value in zip(("alpha", "beta", "gamma"), values[3:], strict=True):
        if not (np.isfinite(value) and 0 < value < 180):
            raise StructureError(
                f"{name}: cell angle {angle} is {value:g}°: angles must lie strictly between "
                "0° and 180° (a flat cell has volume 0 Å³)"
            )
    return np.asarray(Lattice.from_parameters(*values).matrix, dtype=np.float64)


def _column(data: dict, tag: str) -> list[str] | None:
    value = data.get(tag)
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def _cif_atoms(data: dict, name: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Atom sites as listed: labels, Z [m], fractional coordinates [m, 3], occupancies [m]."""
    labels = _column(data, "_atom_site_label")
    types = _column(data, "_atom_site_type_symbol")
    fract = [_column(data, f"_atom_site_fract_{x}") for x in "xyz"]
    if any(column is None for column in fract):
        if "_atom_site_cartn_x" in data:
            raise StructureError(
                f"{name}: atom positions are Cartesian (_atom_site_Cartn_x); only fractional "
                "coordinates (_atom_site_fract_x/y/z) are supported"
            )
        missing = [f"_atom_site_fract_{x}" for x, c in zip("xyz", fract, strict=True) if c is None]
        raise StructureError(f"{name}: no atoms: {', '.join(missing)} missing")
    occupancies = _column(data, "_atom_site_occupancy")
    n = len(fract[0])
    columns = {"_atom_site_label": labels, "_atom_site_type_symbol": types}
    columns.update({f"_atom_site_fract_{x}": c for x, c in zip("xyz", fract, strict=True)})
    columns["_atom_site_occupancy"] = occupancies
    lengths = {tag: len(c) for tag, c in columns.items() if c is not None}
    if len(set(lengths.values())) > 1:
        raise StructureError(f"{name}: atom site columns differ in length: {lengths}")
    if n == 0:
        raise StructureError(f"{name}: no atoms")
    if labels is None:
        if types is None:
            raise StructureError(
                f"{name}: atom sites name no element: neither _atom_site_type_symbol nor "
                "_atom_site_label is given"
            )
        labels = [f"{t}{i + 1}" for i, t in enumerate(types)]

    species = np.empty(n, dtype=np.int32)
    cache: dict[str, int | None] = {}
    unknown = []
    for i in range(n):
        symbol = types[i] if types is not None and types[i] not in ("?", ".") else labels[i]
        if symbol not in cache:
            cache[symbol] = _element(symbol)
        z = cache[symbol]
        if z is None:
            unknown.append((labels[i], symbol))
            z = 0
        species[i] = z
    if unknown:
        label, symbol = unknown[0]
        why = (
            "names a group, not an element"
            if _GROUP_SYMBOLS.match(symbol)
            else "is not an element symbol"
        )
        count = f" ({len(unknown)} atom sites in total)" if len(unknown) > 1 else ""
        raise StructureError(
            f"{name}: unknown element at atom site {label!r}: {symbol!r} {why}{count}; give "
            "the element in _atom_site_type_symbol"
        )

    frac = np.stack(
        [
            _float_column(c, f"_atom_site_fract_{x}", labels, name)
            for x, c in zip("xyz", fract, strict=True)
        ],
        axis=1,
    )
    bad = np.flatnonzero(~np.isfinite(frac).all(axis=1))
    if bad.size:
        i = int(bad[0])
        x = "xyz"[int(np.flatnonzero(~np.isfinite(frac[i]))[0])]
        raise StructureError(
            f"{name}: atom site {labels[i]!r} has a non-finite coordinate "
            f"(_atom_site_fract_{x} = {frac[i, 'xyz'.index(x)]}); {bad.size} site(s) affected"
        )
    if occupancies is None:
        occupancy = np.ones(n)
    else:
        occupancy = _float_column(occupancies, "_atom_site_occupancy", labels, name, default=1.0)
        bad = np.flatnonzero(~((occupancy >= 0) & (occupancy <= 1.0 + _OCCUPANCY_TOL)))
        if bad.size:
            i = int(bad[0])
            raise StructureError(
                f"{name}: atom site {labels[i]!r} has occupancy {occupancy[i]:g}; occupancies "
                "must lie in [0, 1]"
            )
    return labels, species, frac, occupancy


def _float_column(
    values: list[str], tag: str, labels: list[str], name: str, default: float | None = None
) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        pass  # uncertainties "0.123(4)", "?" or garbage: parse one by one
    out = np.empty(len(values))
    for i, value in enumerate(values):
        text = value.strip()
        if text in ("?", "."):
            if default is None:
                raise StructureError(f"{name}: atom site {labels[i]!r} has {tag} = {text!r}")
            out[i] = default
            continue
        try:
            out[i] = float(_UNCERTAINTY.sub("", text))
        except ValueError:
            raise StructureError(
                f"{name}: atom site {labels[i]!r} has {tag} = {text!r}, not a number"
            ) from None
    return out


@functools.cache
def _element_numbers() -> dict[str, int]:
    from ase.data import chemical_symbols

    return {s: z for z, s in enumerate(chemical_symbols) if 1 <= z <= 118}


def _element(symbol: str) -> int | None:
    """Z from a CIF type symbol or label: 'Zn', 'Zn2+', 'ZN', 'C12A', 'Hw1'; None if unknown.

    pymatgen's rule (first two letters if they form an element, else the first letter), except
    that group names pymatgen reinterprets (OH, OH2, NO3, Wat) and 'X', 'Du', 'Q' are unknown.
    D and T (deuterium, tritium) are hydrogen when the letters are exactly D or T.
    """
    elements = _element_numbers()
    if _GROUP_SYMBOLS.match(symbol):
        return None
    letters = re.match(r"[A-Za-z]*", symbol.strip()).group()
    if not letters:
        return None
    two, one = letters[:2].title(), letters[0].upper()
    if len(letters) >= 2 and two in elements:
        return elements[two]
    if one in elements:
        return elements[one]
    if letters.upper() in ("D", "T"):
        return 1
    return None


def _cif_symmetry(data_block: CifBlock, data: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Symmetry operations as rotations [k, 3, 3] and translations [k, 3] (fractional)."""
    from pymatgen.core.operations import SymmOp

    ops = None
    for tag in _SYMOP_TAGS:
        xyz = _column(data, tag)
        if xyz:
            ops = []
            for text in xyz:
                try:
                    ops.append(SymmOp.from_xyz_str(text))
                except Exception as err:
                    raise StructureError(
                        f"{name}: symmetry operation {text!r} in {tag} is not understood"
                    ) from err
            break
    if ops is None:
        ops = _space_group_ops(data_block, data, name)
    rotations = np.array([op.rotation_matrix for op in ops], dtype=np.float64)
    translations = np.array([op.translation_vector for op in ops], dtype=np.float64)
    return rotations, translations


def _space_group_ops(data_block: CifBlock, data: dict, name: str) -> list:
    """Operations from the space group symbol or number, when the file lists none."""
    from pymatgen.io.cif import CifParser
    from pymatgen.symmetry.groups import SpaceGroup

    parser = CifParser.from_str("")  # an empty parser, only for its get_symops
    with _quiet():
        ops = parser.get_symops(data_block)
    if len(ops) > 1:
        return ops
    # One operation: either the group is P1 or pymatgen fell back to P1 because it did not
    # understand the symbol (it does not know "P 21/c"). Try the symbol with screw axes spelled
    # "2_1", then refuse rather than silently read a quarter of the atoms.
    symbol = next((_column(data, t)[0] for t in _SPACE_GROUP_TAGS if t in data), None)
    number = next((_column(data, t)[0] for t in _SPACE_GROUP_NUMBER_TAGS if t in data), None)
    compact = re.sub(r"[\s_]", "", symbol or "")
    p1_number = number is None or number.strip() in ("", "1", "?", ".")
    if compact.upper() in ("", "?", ".", "P1") and p1_number:
        return ops
    for candidate in (compact, _screw_axes(symbol or "")):
        try:
            with _quiet():
                return list(SpaceGroup(candidate).symmetry_ops)
        except Exception:
            continue
    given = f"space group {symbol!r}" if symbol else f"space group number {number!r}"
    raise StructureError(
        f"{name}: {given} is not understood and the file lists no symmetry operations "
        "(_symmetry_equiv_pos_as_xyz); cannot expand the asymmetric unit"
    )


def _screw_axes(symbol: str) -> str:
    """'P 21/c' -> 'P2_1/c', 'P 43 21 2' -> 'P4_32_12', as pymatgen's SpaceGroup spells them."""

    def screw(token: str) -> str:
        m = re.fullmatch(r"([2346])([1-5])(/.*)?", token)
        if m and int(m[2]) < int(m[1]):
            return f"{m[1]}_{m[2]}{m[3] or ''}"
        return token

    return "".join(screw(token) for token in symbol.split())


def _expand(
    frac: np.ndarray, rotations: np.ndarray, translations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """P1 expansion: images of each site, wrapped into [0, 1), duplicates (special positions)
    removed. Returns fractional coordinates [n, 3] and the atom site of each [n]."""
    m, k = len(frac), len(rotations)
    if k > 1:
        # As pymatgen: 0.3333 and 0.6667 are 1/3 and 2/3, so that their images coincide.
        for third in (1 / 3, 2 / 3):
            frac = np.where(np.abs(frac / third - 1) <= _SYMMETRY_TOL, third, frac)
    images = np.einsum("kij,mj->mki", rotations, frac) + translations[None]
    images -= np.floor(images)
    keep = np.ones((m, k), dtype=bool)
    if k > 1:
        chunk = max(1, 2_000_000 // (k * k * 3))
        for start in range(0, m, chunk):
            part = images[start : start + chunk]
            delta = part[:, :, None, :] - part[:, None, :, :]
            delta -= np.round(delta)
            same = (np.abs(delta) < _SYMMETRY_TOL).all(axis=-1)
            keep[start : start + chunk] = ~np.triu(same, 1).any(axis=1)
    rows = np.nonzero(keep)
    return images[rows], rows[0]


def _majority(
    frac: np.ndarray, cell: np.ndarray, species: np.ndarray, occupancy: np.ndarray
) -> np.ndarray:
    """Indices of the atoms kept by disorder="majority", in order.

    A site is a set of atoms within 0.01 Å of each other (periodic). On each site the species
    with the largest summed occupancy wins (the first listed on a tie) and is represented by its
    most occupied atom; a site whose total occupancy is below 0.5 is dropped.
    """
    n = len(frac)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    partial = np.flatnonzero(occupancy < 1.0 - _OCCUPANCY_TOL)
    chunk = max(1, 1_000_000 // max(n, 1))
    for start in range(0, len(partial), chunk):
        rows = partial[start : start + chunk]
        delta = frac[None, :, :] - frac[rows, None, :]
        delta -= np.round(delta)  # exact nearest image for separations this small
        near = np.linalg.norm(delta @ cell, axis=-1) < _SITE_TOL
        for a, b in zip(*np.nonzero(near), strict=True):
            ra, rb = root(int(rows[a])), root(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

    sites: dict[int, list[int]] = {}
    for i in range(n):
        sites.setdefault(root(i), []).append(i)
    keep = []
    for members in sites.values():
        if occupancy[members].sum() < 0.5:
            continue
        totals: dict[int, float] = {}
        for i in members:
            totals[int(species[i])] = totals.get(int(species[i]), 0.0) + occupancy[i]
        winner = max(totals, key=totals.get)  # first maximum: the first listed on a tie
        best = max((i for i in members if species[i] == winner), key=lambda i: occupancy[i])
        keep.append(best)
    return np.array(sorted(keep), dtype=np.int64)
