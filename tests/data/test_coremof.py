"""CoRE MOF extraction, parsing cache, targets, splits and filters on the real package data."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest

from jmof.data import Dataset, coremof, split_of

LIMIT = 120


@pytest.fixture(scope="module")
def asr():
    return coremof.load("2019-ASR", limit=LIMIT, progress=False)


def _csv_rows(subset):
    import CoRE_MOF.data

    with open(resources.files(CoRE_MOF.data) / f"{subset}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_structure_is_loaded_or_reported(asr):
    names = coremof.list_names("2019-ASR")[:LIMIT]
    assert sorted(asr.names + tuple(f.name for f in asr.failures)) == sorted(names)
    # The first CSV rows include many unresolved-disorder structures (overlapping atoms).
    assert len(asr) >= 30
    for failure in asr.failures:
        assert failure.reason and failure.name in names


def test_targets_align_with_the_csv(asr):
    rows = {r["filename"]: r for r in _csv_rows("2019-ASR")}
    for name, lcd, pld, oms in zip(
        asr.names, asr.targets["LCD"], asr.targets["PLD"], asr.targets["Has_OMS"]
    ):
        assert lcd == pytest.approx(float(rows[name]["LCD"]))
        assert pld == pytest.approx(float(rows[name]["PLD"]))
        assert oms == {"Yes": 1.0, "No": 0.0}[rows[name]["Has_OMS"].strip()]


def test_density_matches_zeopp(asr):
    """Our density from the parsed CIF against Zeo++'s (CSV column ``cm3_g``)."""
    ours = np.array([c.density for c in asr.crystals])
    np.testing.assert_allclose(ours, asr.targets["cm3_g"], rtol=2e-3)


def test_2014_has_names_only():
    assert coremof.numeric_targets("2014") == ()
    assert len(coremof.list_names("2014")) == len(_csv_rows("2014"))


def test_unknown_subset_and_names():
    with pytest.raises(ValueError, match="unknown CoRE MOF subset"):
        coremof.list_names("2020")
    with pytest.raises(KeyError, match="not in CoRE MOF"):
        coremof.load("2019-ASR", names=["NOT_A_MOF"], progress=False)


def test_load_by_name(asr):
    picked = list(asr.names[5:8])
    subset = coremof.load("2019-ASR", names=picked, progress=False)
    assert subset.names == tuple(picked)
    np.testing.assert_array_equal(subset[picked[1]].positions, asr[picked[1]].positions)


def test_splits_are_deterministic_and_stable():
    names = coremof.list_names("2019-ASR")
    labels = [split_of(n) for n in names]
    counts = {s: labels.count(s) / len(names) for s in ("train", "val", "test")}
    assert counts["train"] == pytest.approx(0.8, abs=0.02)
    assert counts["val"] == pytest.approx(0.1, abs=0.01)
    assert counts["test"] == pytest.approx(0.1, abs=0.01)
    # A structure's split depends on its name only, not on which others are present.
    assert [split_of(n) for n in names[::7]] == labels[::7]
    assert split_of(names[0], salt="other") in ("train", "val", "test")
    with pytest.raises(ValueError):
        split_of("x", (0.5, 0.5, 0.5))


def test_dataset_split_partitions(asr):
    parts = asr.split()
    assert sum(len(p) for p in parts.values()) == len(asr)
    assert set().union(*(set(p.names) for p in parts.values())) == set(asr.names)
    for label, part in parts.items():
        assert all(split_of(n) == label for n in part.names)
        np.testing.assert_array_equal(
            part.targets["LCD"], [asr.targets["LCD"][asr.names.index(n)] for n in part.names]
        )


def test_filters_record_what_they_drop(asr):
    small = asr.filter(max_atoms=100)
    assert all(c.n_atoms <= 100 for c in small.crystals)
    dropped = {f.name for f in small.failures} - {f.name for f in asr.failures}
    assert dropped == {n for n, c in zip(asr.names, asr.crystals) if c.n_atoms > 100}
    no_metal = asr.filter(elements=["H", "C", "N", "O", "Zn", "Cu"])
    allowed = {1, 6, 7, 8, 30, 29}
    assert all(set(c.species.tolist()) <= allowed for c in no_metal.crystals)
    assert any("filtered: elements" in f.reason for f in no_metal.failures)
    assert ("filtered: too many atoms", len(dropped)) in small.failure_table()


def test_parse_resumes_after_interruption(tmp_path, monkeypatch):
    monkeypatch.setenv("JMOF_CACHE", str(tmp_path))
    monkeypatch.setattr(coremof, "CHUNK_SIZE", 5)
    first = coremof.list_names("2019-ASR")[:15]
    chunks = coremof.parse("2019-ASR", names=first, workers=1, progress=False)
    assert len(chunks) == 3 and all(p.exists() for p in chunks)
    mtimes = {p: p.stat().st_mtime_ns for p in chunks}
    chunks[1].unlink()  # as if killed while writing the second chunk
    coremof.parse("2019-ASR", names=first, workers=1, progress=False)
    assert chunks[1].exists()
    assert chunks[0].stat().st_mtime_ns == mtimes[chunks[0]]
    assert chunks[2].stat().st_mtime_ns == mtimes[chunks[2]]
    dataset = coremof.load("2019-ASR", limit=15, workers=1, progress=False)
    assert len(dataset) + len(dataset.failures) == 15
    # A request that is not a whole number of chunks parses whole chunks, never a partial one.
    coremof.load("2019-ASR", limit=7, workers=1, progress=False)
    assert (
        chunks[1].stat().st_mtime_ns
        == coremof.parse("2019-ASR", names=first[5:10], workers=1, progress=False)[0]
        .stat()
        .st_mtime_ns
    )
    with np.load(chunks[1]) as z:
        assert len(z["names"]) + len(z["failed"]) == 5
    picked = coremof.load("2019-ASR", names=[first[12]], workers=1, progress=False)
    assert len(picked) + len(picked.failures) == 1


def test_interrupted_extraction_leaves_no_partial_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JMOF_CACHE", str(tmp_path))
    calls = []

    def failing_copy(src, dst):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        dst.write(src.read())

    monkeypatch.setattr(coremof.shutil, "copyfileobj", failing_copy)
    with pytest.raises(KeyboardInterrupt):
        coremof.extract("2014", progress=False)
    parent = coremof.subset_dir("2014")
    assert not (parent / "cif").exists()
    assert list(parent.iterdir()) == []


def test_dataset_validates_lengths():
    with pytest.raises(ValueError, match="names"):
        Dataset("x", ("a",), ())


def test_sample_is_deterministic_and_nested(asr):
    small, large = asr.sample(10), asr.sample(25)
    assert len(small) == 10 and len(large) == 25
    assert set(small.names) <= set(large.names)
    assert small.names == asr.sample(10).names
    assert list(small.names) == [n for n in asr.names if n in set(small.names)]  # dataset order
    reordered = asr.take(range(len(asr) - 1, -1, -1))
    assert set(reordered.sample(10).names) == set(small.names)
    assert asr.sample(10_000) is asr
