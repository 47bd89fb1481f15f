"""Reading, writing and validating structures: a corpus of hostile files, parity with ASE and
pymatgen on valid ones, round trips, disorder and multi-block CIFs, and real CoRE MOF CIFs."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
from pymatgen.core import Structure

from jmof.structure import Crystal, StructureError, StructureWarning, read, validate, write

DATA = Path(__file__).parent / "data" / "structures"

# valid_p1.cif, computed by hand from its cell (5, 6, 7 Å, orthorhombic) and fractions.
P1_SPECIES = [30, 8, 6, 1]
P1_POSITIONS = [[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [1.25, 3.0, 3.5], [1.25, 3.0, 4.5801]]
P1_CELL = np.diag([5.0, 6.0, 7.0])


def _quiet_reference(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _cellpar(cell: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(cell, axis=1)
    angles = [
        np.degrees(np.arccos(cell[i] @ cell[j] / (lengths[i] * lengths[j])))
        for i, j in ((1, 2), (0, 2), (0, 1))
    ]
    return np.concatenate([lengths, angles])


def _assert_same_atoms(species_a, frac_a, species_b, frac_b, cell, atol=1e-6):
    """Same atoms up to order and lattice translations: a bijection of equal species within atol."""
    species_a, species_b = np.asarray(species_a), np.asarray(species_b)
    assert len(species_a) == len(species_b)
    delta = np.asarray(frac_a)[:, None, :] - np.asarray(frac_b)[None, :, :]
    delta -= np.round(delta)
    distance = np.linalg.norm(delta @ cell, axis=-1)
    match = np.argmin(distance, axis=1)
    assert np.all(distance[np.arange(len(match)), match] < atol)
    assert len(set(match.tolist())) == len(match)
    np.testing.assert_array_equal(species_a, species_b[match])


def _variant(tmp_path: Path, text: str, name: str = "variant.cif") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


VALID_P1 = (DATA / "valid_p1.cif").read_text(encoding="utf-8")


# --- hostile files --------------------------------------------------------------------------

HOSTILE = [
    ("empty.cif", ["the file is empty"]),
    ("binary.cif", ["binary file", "NUL byte"]),
    ("truncated_header.cif", ["ends with _cell_len", "truncated"]),
    ("truncated_loop.cif", ["incomplete atom loop", "6 columns", "22 values", "truncated"]),
    ("no_cell.cif", ["no unit cell", "_cell_length_a", "missing"]),
    ("zero_cell.cif", ["cell volume is 0.0 Å³ (a=0.0 Å)"]),
    ("negative_cell.cif", ["cell length b is -6 Å", "positive"]),
    ("nan_cell.cif", ["cell length c is nan", "not a finite number"]),
    ("flat_cell.cif", ["cell volume is", "α=120°", "coplanar"]),
    ("nan_coords.cif", ["atom site 'H1'", "non-finite coordinate", "_atom_site_fract_y = nan"]),
    ("inf_coords.cif", ["atom site 'H1'", "non-finite coordinate", "_atom_site_fract_z = inf"]),
    ("unknown_element.cif", ["unknown element", "'Xx1'", "'Xx' is not an element symbol"]),
    (
        "partial_occupancy.cif",
        ["5 partially occupied", "first: M1 occupancy 0.7", 'disorder="majority"', "< 0.5"],
    ),
    ("overlap.cif", ["site C1)", "site C1b)", "0.100 Å apart", "minimum for C–C is 0.76 Å"]),
    ("overlap_periodic.cif", ["0.100 Å apart", "across the periodic boundary", "(-1, 0, 0)"]),
    ("unknown_space_group.cif", ["space group 'P 21/q' is not understood"]),
    ("malformed.extxyz", ["cannot read as extxyz", "oops"]),
]


@pytest.mark.parametrize(("filename", "phrases"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file_raises_structure_error_naming_file_and_reason(filename, phrases):
    path = DATA / filename
    with pytest.raises(StructureError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for phrase in phrases:
        assert phrase in message
    assert "Traceback" not in message


def test_parser_exception_is_chained_but_message_stands_alone():
    with pytest.raises(StructureError) as info:
        read(DATA / "truncated_loop.cif")
    assert info.value.__cause__ is not None  # pymatgen's own error, kept for debugging
    assert "zip()" not in str(info.value)


VARIANTS = [
    ("gamma 180", ("_cell_angle_gamma                 90.0", "_cell_angle_gamma 180"), "gamma"),
    ("duplicate atom", ("C1   C ", "C1c  C   0.25000  0.50000  0.50000  1.0\nC1   C "), "0.000 Å"),
    ("group label", ("H1   H ", "OH1  OH "), "'OH' names a group"),
    ("X dummy", ("H1   H ", "X1   X  "), "'X' is not an element"),
    ("unknown coordinate", ("0.65430", "?"), "atom site 'H1' has _atom_site_fract_z = '?'"),
    ("text coordinate", ("0.65430", "abc"), "'abc', not a number"),
    ("occupancy > 1", ("0.65430  1.0", "0.65430  1.5"), "occupancy 1.5"),
    ("cartesian", ("_atom_site_fract_", "_atom_site_Cartn_"), "Cartesian"),
    ("open text field", ("data_valid_p1", "data_valid_p1\n_publ_section_title\n;\nabc"), "never"),
    (
        "thin cell",
        ("_cell_length_c                    7.0", "_cell_length_c 0.05"),
        "thick along c",
    ),
]


@pytest.mark.parametrize(("case", "edit", "phrase"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_broken_variant_of_valid_cif_raises(tmp_path, case, edit, phrase):
    old, new = edit
    assert old in VALID_P1
    text = VALID_P1.replace(old, new, 1)
    path = _variant(tmp_path, text)
    with pytest.raises(StructureError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: ")
    assert phrase in str(info.value)


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["CRLF", "CR"])
def test_line_endings_do_not_change_reading_or_diagnosis(tmp_path, newline):
    path = tmp_path / "valid.cif"
    path.write_bytes(VALID_P1.encode().replace(b"\n", newline))
    np.testing.assert_allclose(read(path).positions, P1_POSITIONS, atol=1e-9)
    truncated = (DATA / "truncated_loop.cif").read_bytes()
    path = tmp_path / "truncated.cif"
    path.write_bytes(truncated.replace(b"\n", newline))
    with pytest.raises(StructureError, match=r"atom loop \(line 12\).*last on line 22"):
        read(path)


def test_loop_header_at_end_of_file_is_truncation(tmp_path):
    text = VALID_P1.split("loop_\n_atom_site_label")[0] + "loop_\n_atom_site_label\n"
    with pytest.raises(StructureError, match="ends with _atom_site_label .*truncated"):
        read(_variant(tmp_path, text))


def test_whitespace_only_and_undecodable_text_are_refused(tmp_path):
    with pytest.raises(StructureError, match="empty"):
        read(_variant(tmp_path, "  \n\n\t\n", "blank.cif"))
    garbage = tmp_path / "garbage.cif"
    garbage.write_bytes(bytes(range(128, 256)) * 4)  # no NUL, not UTF-8
    with pytest.raises(StructureError, match="binary file .*not UTF-8"):
        read(garbage)


def test_missing_file_is_an_os_error():
    with pytest.raises(FileNotFoundError):
        read(DATA / "does_not_exist.cif")


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="disorder"):
        read(DATA / "valid_p1.cif", disorder="random")
    with pytest.raises(ValueError, match="block"):
        read(DATA / "POSCAR", block="x")


# --- valid files ----------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["valid_p1.cif", "bom.cif", "crlf.cif", "latin1.cif"])
def test_valid_p1_cif_against_hand_computed_values(filename):
    crystal = read(DATA / filename)
    np.testing.assert_array_equal(crystal.species, P1_SPECIES)
    np.testing.assert_allclose(crystal.positions, P1_POSITIONS, atol=1e-9)
    np.testing.assert_allclose(crystal.cell, P1_CELL, atol=1e-9)
    assert crystal.pbc == (True, True, True)
    assert crystal.species.dtype == np.int32
    assert crystal.volume == pytest.approx(210.0)


def test_symmetry_expansion_matches_ase_and_pymatgen():
    crystal = read(DATA / "valid_symmetry.cif")
    assert crystal.n_atoms == 10  # Zn on an inversion centre: 2; C1 and O1: 4 each
    assert crystal.formula == "C4O4Zn2"
    reference = ase.io.read(DATA / "valid_symmetry.cif")
    np.testing.assert_allclose(_cellpar(crystal.cell), reference.cell.cellpar(), atol=1e-9)
    _assert_same_atoms(
        crystal.species,
        crystal.frac_positions,
        reference.numbers,
        reference.get_scaled_positions(),
        crystal.cell,
    )
    structure = _quiet_reference(Structure.from_file, DATA / "valid_symmetry.cif")
    np.testing.assert_allclose(crystal.cell, structure.lattice.matrix, atol=1e-9)
    _assert_same_atoms(
        crystal.species,
        crystal.frac_positions,
        [site.specie.Z for site in structure],
        structure.frac_coords,
        crystal.cell,
    )


def test_space_group_symbol_without_operations_is_expanded():
    # pymatgen alone reads 'P 21/c' without operations as P1 (3 atoms); ASE and we read 10.
    crystal = read(DATA / "symbol_only.cif")
    expected = read(DATA / "valid_symmetry.cif")
    reference = ase.io.read(DATA / "symbol_only.cif")
    assert crystal.n_atoms == len(reference) == 10
    _assert_same_atoms(
        crystal.species,
        crystal.frac_positions,
        expected.species,
        expected.frac_positions,
        crystal.cell,
    )


def test_poscar_against_ase_and_hand_values():
    crystal = read(DATA / "POSCAR")
    reference = ase.io.read(DATA / "POSCAR")
    np.testing.assert_array_equal(crystal.species, [11, 17])
    np.testing.assert_allclose(crystal.cell, [[4, 0, 0], [0, 4, 0], [0.5, 0, 4.5]])
    np.testing.assert_allclose(crystal.positions, [[0, 0, 0], [2.25, 2.0, 2.25]], atol=1e-12)
    np.testing.assert_allclose(crystal.positions, reference.positions)


def test_extxyz_against_hand_values():
    crystal = read(DATA / "valid.extxyz")
    np.testing.assert_array_equal(crystal.species, [8, 1, 1])
    np.testing.assert_allclose(crystal.cell, [[5, 0, 0], [0, 6, 0], [1, 0, 7]])
    np.testing.assert_allclose(crystal.positions[1], [1.9572, 1.0, 1.0])
    assert crystal.pbc == (True, True, True)


def test_molecule_without_cell_is_allowed(tmp_path):
    path = _variant(tmp_path, "2\nH2\nH 0 0 0\nH 0 0 0.74\n", "h2.xyz")
    crystal = read(path)
    assert crystal.pbc == (False, False, False)
    np.testing.assert_array_equal(crystal.cell, np.zeros((3, 3)))
    assert crystal.n_atoms == 2


# --- round trips ----------------------------------------------------------------------------


@pytest.fixture
def triclinic() -> Crystal:
    cell = np.array([[6.0, 0.0, 0.0], [1.5, 7.0, 0.0], [-1.0, 2.0, 8.0]])
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.7, 0.1], [0.35, 0.9, 0.6], [-0.2, 1.3, 0.5]])
    return Crystal(species=np.array([30, 8, 6, 1], np.int32), positions=frac @ cell, cell=cell)


def test_cif_round_trip_preserves_species_fractions_and_cell(tmp_path, triclinic):
    write(tmp_path / "t.cif", triclinic)
    back = read(tmp_path / "t.cif")
    np.testing.assert_array_equal(back.species, triclinic.species)
    delta = back.frac_positions - triclinic.frac_positions
    np.testing.assert_allclose(delta - np.round(delta), 0, atol=1e-8)
    assert np.all((back.frac_positions >= 0) & (back.frac_positions < 1))
    np.testing.assert_allclose(_cellpar(back.cell), _cellpar(triclinic.cell), atol=1e-6)
    np.testing.assert_allclose(back.volume, triclinic.volume, rtol=1e-9)


@pytest.mark.parametrize("filename", ["t.extxyz", "t.xyz", "POSCAR"])
def test_ase_round_trip_preserves_positions_and_cell(tmp_path, triclinic, filename):
    write(tmp_path / filename, triclinic)
    back = read(tmp_path / filename)
    np.testing.assert_array_equal(back.species, triclinic.species)
    np.testing.assert_allclose(back.positions, triclinic.positions, atol=1e-6)
    np.testing.assert_allclose(back.cell, triclinic.cell, atol=1e-6)
    assert back.pbc == triclinic.pbc


def test_pymatgen_and_ase_conversions_round_trip(triclinic):
    for back in (
        Crystal.from_pymatgen(triclinic.to_pymatgen()),
        Crystal.from_ase(triclinic.to_ase()),
    ):
        np.testing.assert_array_equal(back.species, triclinic.species)
        np.testing.assert_allclose(back.positions, triclinic.positions, atol=1e-12)
        np.testing.assert_allclose(back.cell, triclinic.cell)


def test_crystal_from_ase_does_not_follow_later_changes_of_the_atoms(triclinic):
    """ASE moves atoms in place (MD, optimisers); a Crystal taken earlier must keep its geometry."""
    atoms = triclinic.to_ase()
    snapshot = Crystal.from_ase(atoms)
    atoms.positions += 1.0
    atoms.cell[0, 0] += 1.0
    atoms.numbers[0] = 2
    np.testing.assert_allclose(snapshot.positions, triclinic.positions, atol=1e-12)
    np.testing.assert_allclose(snapshot.cell, triclinic.cell)
    np.testing.assert_array_equal(snapshot.species, triclinic.species)


def test_writing_a_non_periodic_crystal_as_cif_is_refused(tmp_path):
    molecule = Crystal(
        species=np.array([1, 1], np.int32),
        positions=np.array([[0, 0, 0], [0, 0, 0.74]]),
        cell=np.zeros((3, 3)),
        pbc=(False, False, False),
    )
    with pytest.raises(StructureError, match="periodic"):
        write(tmp_path / "m.cif", molecule)


# --- disorder and blocks --------------------------------------------------------------------


def test_disorder_majority_keeps_majority_species_and_drops_low_occupancy():
    crystal = read(DATA / "partial_occupancy.cif", disorder="majority")
    # Zn (0.7) beats Co (0.3) on M1; O2a (0.6) stays, O2b (0.4) and solvent O3 (0.25) go.
    np.testing.assert_array_equal(crystal.species, [30, 8, 6])
    np.testing.assert_allclose(
        crystal.positions, [[0, 0, 0], [2.5, 0, 0], [1.25, 3, 3.5]], atol=1e-9
    )


def test_overlap_check_still_runs_after_majority(tmp_path):
    text = (DATA / "partial_occupancy.cif").read_text()
    text = text.replace("0.56000  0.00000  0.00000  0.4", "0.56000  0.00000  0.00000  0.5")
    text = text.replace("0.50000  0.00000  0.00000  0.6", "0.50000  0.00000  0.00000  0.5")
    with pytest.raises(StructureError, match=r"sites? O2a\).*site O2b\).*0\.300 Å apart"):
        read(_variant(tmp_path, text), disorder="majority")


def test_multi_block_warns_and_reads_first_block_with_atoms():
    with pytest.warns(StructureWarning) as record:
        crystal = read(DATA / "multi_block.cif")
    message = str(record[0].message)
    assert "3 data blocks" in message
    assert "'global', 'first', 'second'" in message
    assert "read 'first'" in message
    assert "block=NAME" in message
    assert crystal.formula == "COZn"


@pytest.mark.parametrize("block", ["second", "SECOND"])
def test_block_selects_a_data_block_without_warning(block):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crystal = read(DATA / "multi_block.cif", block=block)
    np.testing.assert_array_equal(crystal.species, [11, 17])
    np.testing.assert_allclose(crystal.cell, np.diag([4.0, 4.0, 4.0]), atol=1e-9)


def test_unknown_block_lists_the_available_ones():
    with pytest.raises(StructureError, match="no data block named 'third'.*'global', 'first'"):
        read(DATA / "multi_block.cif", block="third")


def test_validate_false_skips_physical_checks_only():
    crystal = read(DATA / "overlap.cif", validate=False)
    assert crystal.n_atoms == 4
    with pytest.raises(StructureError, match="unknown element"):
        read(DATA / "unknown_element.cif", validate=False)


# --- validate -------------------------------------------------------------------------------


def _replace(crystal: Crystal, **changes) -> Crystal:
    return dataclasses.replace(crystal, **changes)


def _dimer(z1: int, z2: int, distance: float) -> Crystal:
    return Crystal(
        species=np.array([z1, z2], np.int32),
        positions=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, distance]]),
        cell=np.zeros((3, 3)),
        pbc=(False, False, False),
    )


@pytest.mark.parametrize(
    ("z1", "z2", "distance"),
    [(1, 1, 0.74), (8, 1, 0.96), (6, 1, 0.95), (6, 6, 1.20), (40, 1, 1.80), (24, 24, 1.80)],
    ids=["H2", "O-H", "C-H", "C#C", "Zr-H", "Cr-Cr quintuple"],
)
def test_real_bonds_are_not_flagged(z1, z2, distance):
    validate(_dimer(z1, z2, distance))


@pytest.mark.parametrize(
    ("z1", "z2", "distance"),
    [(6, 6, 0.0), (6, 6, 0.7), (1, 1, 0.45), (8, 1, 0.45), (30, 8, 0.9)],
    ids=["duplicate", "C-C 0.7", "H-H 0.45", "O-H 0.45", "Zn-O 0.9"],
)
def test_overlaps_are_flagged_with_both_atoms_named(z1, z2, distance):
    with pytest.raises(
        StructureError, match=rf"dimer: atoms 0 \(.*\) and 1 \(.*\) are {distance:.3f}"
    ):
        validate(_dimer(z1, z2, distance), "dimer")
    validate(_dimer(z1, z2, distance), "dimer", min_distance_factor=0)  # 0 turns it off


def test_overlap_through_an_oblique_boundary_is_found():
    # In this oblique cell the closest image is at shift (2, 0, -1), 0.348 Å away, while the
    # naive minimum image (rounding fractional differences) gives 1.80 Å.
    cell = np.array([[2.0, 0.0, 0.0], [0.0, 10.0, 0.0], [7.3, 0.0, 2.5]])
    positions = np.array([[0.0, 5.0, 0.0], [3.52, 5.0, 2.23]])
    crystal = Crystal(species=np.array([6, 6], np.int32), positions=positions, cell=cell)
    shifts = np.array(np.meshgrid(*[range(-6, 7)] * 3)).reshape(3, -1).T
    brute_force = np.linalg.norm(positions[1] - positions[0] + shifts @ cell, axis=1).min()
    naive = np.linalg.solve(cell.T, positions[1] - positions[0])
    naive = np.linalg.norm((naive - np.round(naive)) @ cell)
    assert brute_force < 0.76 < naive
    with pytest.raises(StructureError, match=f"are {brute_force:.3f} Å apart"):
        validate(crystal)
    validate(crystal, min_distance_factor=0.5 * brute_force / 0.76 * 0.99)


def test_atom_overlapping_its_own_image_in_a_thin_cell():
    crystal = Crystal(
        species=np.array([6], np.int32),
        positions=np.zeros((1, 3)),
        cell=np.diag([5.0, 5.0, 0.4]),
    )
    with pytest.raises(StructureError, match=r"own periodic image \(lattice shift \(0, 0, -?1\)\)"):
        validate(crystal)
    # The same cell, not periodic along c: nothing to flag.
    validate(_replace(crystal, pbc=(True, True, False)))


def test_left_handed_cell_is_fine():
    crystal = read(DATA / "valid_p1.cif")
    mirrored = _replace(
        crystal, cell=crystal.cell * [[1], [1], [-1]], positions=crystal.positions * [1, 1, -1]
    )
    assert np.linalg.det(mirrored.cell) < 0
    validate(mirrored)
    assert mirrored.volume == pytest.approx(210.0)


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"species": np.array([0, 8, 6, 1], np.int32)}, "unknown element Z=0"),
        ({"species": np.zeros(0, np.int32), "positions": np.zeros((0, 3))}, "no atoms"),
        ({"positions": np.array(P1_POSITIONS) * [1, 1, np.nan]}, "non-finite position"),
        ({"cell": P1_CELL + [[0, 0, 0], [0, np.inf, 0], [0, 0, 0]]}, "non-finite"),
        ({"cell": P1_CELL * [[1], [0], [1]]}, "cell volume is 0 Å³"),
        ({"cell": np.array([[5.0, 0, 0], [5.0, 0.01, 0], [0, 0, 7.0]])}, "thick along"),
    ],
    ids=["Z=0", "empty", "nan position", "inf cell", "zero vector", "flat"],
)
def test_validate_refuses_broken_crystals(change, phrase):
    crystal = _replace(read(DATA / "valid_p1.cif"), **change)
    with pytest.raises(StructureError) as info:
        validate(crystal, "mine")
    assert str(info.value).startswith("mine: ")
    assert phrase in str(info.value)


# --- real CoRE MOF CIFs ---------------------------------------------------------------------

COREMOF_NAMES = ["ABAVIJ_clean", "ABAYIO_clean", "ABAYOU_clean"]


@pytest.fixture(scope="module")
def coremof_cifs(coremof_cif_dir) -> dict[str, Path]:
    """Three CoRE MOF 2019-ASR CIFs from the extracted cache."""
    return {name: coremof_cif_dir / f"{name}.cif" for name in COREMOF_NAMES}


@pytest.mark.parametrize("name", COREMOF_NAMES)
def test_coremof_cif_matches_pymatgen(coremof_cifs, name):
    path = coremof_cifs[name]
    crystal = read(path)
    text = path.read_text(encoding="utf-8")
    structure = _quiet_reference(Structure.from_str, text, fmt="cif")
    assert crystal.n_atoms == len(structure) > 100
    np.testing.assert_allclose(crystal.cell, structure.lattice.matrix, atol=1e-9)
    _assert_same_atoms(
        crystal.species,
        crystal.frac_positions,
        [site.specie.Z for site in structure],
        structure.frac_coords,
        crystal.cell,
    )
