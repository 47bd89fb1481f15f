"""CoRE MOF 2014 / 2019 (package ``core-mof``): extraction, parsing cache, targets, datasets.

The package ships each subset as one ``.tar.xz`` of CIFs plus a CSV of Zeo++ properties.
Reading a single CIF out of the archive scans it (seconds), so each subset is extracted once into
the cache; parsed crystals are then stored as ``.npz`` chunks (written atomically, so an
interrupted parse resumes where it stopped), which load in about a second.

Cache layout (``$JMOF_CACHE``, default ``~/.cache/jmof``)::

    coremof/<package version>/<subset>/cif/*.cif           extracted CIFs
    coremof/<package version>/<subset>/parsed-<key>/*.npz  parsed crystals and failures
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from jmof.data.cache import cache_root, save_npz
from jmof.data.dataset import Dataset, Failure
from jmof.structure import Crystal, StructureError

SUBSETS = ("2014", "2019-ASR", "2019-FSR")
CHUNK_SIZE = 250
_PARSE_FORMAT = 1  # bump when the parsed-chunk layout or the reader's validation changes

#: Zeo++ properties in the CSV that are numbers. Units: LCD, PLD, LFPD in Å; ``cm3_g`` is, despite
#: its name, the crystal density in g/cm³ (it equals ASA_m2_cm3 / ASA_m2_g); ASA/NASA in m²/cm³
#: and m²/g; AV_VF a fraction; AV_cm3_g and NAV_cm3_g in cm³/g.
NUMERIC_COLUMNS = (
    "LCD", "PLD", "LFPD", "cm3_g", "ASA_m2_cm3", "ASA_m2_g", "NASA_m2_cm3", "NASA_m2_g",
    "AV_VF", "AV_cm3_g", "NAV_cm3_g",
)  # fmt: skip


def _check_subset(subset: str) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"unknown CoRE MOF subset {subset!r}; choose one of {', '.join(SUBSETS)}")


def package_version() -> str:
    return metadata.version("core-mof")


def _package_file(name: str) -> Path:
    import CoRE_MOF.data

    return Path(str(resources.files(CoRE_MOF.data) / name))


def subset_dir(subset: str) -> Path:
    """``$JMOF_CACHE/coremof/<version>/<subset>``."""
    _check_subset(subset)
    return cache_root() / "coremof" / package_version() / subset


def extract(subset: str = "2019-ASR", *, progress: bool = True) -> Path:
    """Extract a subset's CIFs into the cache once; returns the directory of ``*.cif`` files.

    Extraction goes to a temporary directory that is renamed into place when complete, so an
    interrupted extraction never leaves a half-filled cache behind.
    """
    target = subset_dir(subset) / "cif"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = _package_file(f"{subset}.tar.xz")
    tmp = Path(tempfile.mkdtemp(prefix=".cif-", dir=target.parent))
    try:
        with tarfile.open(archive, "r:xz") as tar, _progress(progress) as bar:
            task = bar.add_task(f"extracting CoRE MOF {subset}", total=len(list_names(subset)))
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if not (member.isfile() and member.size > 0 and name.endswith(".cif")):
                    continue
                if name.startswith("."):
                    continue
                source = tar.extractfile(member)
                with open(tmp / name, "wb") as out:
                    shutil.copyfileobj(source, out)
                bar.advance(task)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def list_names(subset: str = "2019-ASR") -> list[str]:
    """Structure names listed in the subset's CSV (the CIF file names without ``.cif``)."""
    return list(_read_csv(subset).keys())


def _read_csv(subset: str) -> dict[str, dict[str, str]]:
    _check_subset(subset)
    with open(_package_file(f"{subset}.csv"), newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = {}
        for row in reader:
            # Trailing empty "Unnamed" columns are dropped.
            rows[row[0]] = {k: v for k, v in zip(header[1:], row[1:]) if k}
    return rows


def properties(subset: str = "2019-ASR") -> dict[str, dict[str, float | str]]:
    """The subset's CSV as ``name -> {column: value}``: Zeo++ numbers as floats (NaN when
    empty), ``Has_OMS`` as 1.0/0.0, other columns as stripped strings."""
    table = {}
    for name, row in _read_csv(subset).items():
        record: dict[str, float | str] = {}
        for key, value in row.items():
            value = value.strip()
            if key in NUMERIC_COLUMNS:
                record[key] = float(value) if value else float("nan")
            elif key == "Has_OMS":
                record[key] = {"Yes": 1.0, "No": 0.0}.get(value, float("nan"))
            else:
                record[key] = value
        table[name] = record
    return table


def numeric_targets(subset: str) -> tuple[str, ...]:
    """Names of the numeric columns the subset provides (empty for 2014, which has none)."""
    rows = _read_csv(subset)
    first = next(iter(rows.values()), {})
    return tuple(k for k in (*NUMERIC_COLUMNS, "Has_OMS") if k in first)


# --- parsing cache ---------------------------------------------------------------------------


def _parse_key(read_options: dict) -> str:
    payload = json.dumps({"format": _PARSE_FORMAT, **read_options}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def _parse_chunk(args: tuple[list[str], str, str, dict]) -> None:
    """Parse CIFs ``names`` from ``cif_dir`` and write one ``.npz`` chunk to ``out_path``."""
    import warnings

    from jmof.structure import read

    names, cif_dir, out_path, read_options = args
    ok_names, species, positions, cells, counts, failed, reasons = [], [], [], [], [], [], []
    for name in names:
        path = Path(cif_dir) / f"{name}.cif"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal = read(path, **read_options)
        except (StructureError, OSError) as err:
            failed.append(name)
            message = str(err)
            prefix = f"{path.name}: "
            reasons.append(message.split(prefix, 1)[1] if prefix in message else message)
            continue
        ok_names.append(name)
        species.append(np.asarray(crystal.species, np.int16))
        positions.append(np.asarray(crystal.positions, np.float64))
        cells.append(np.asarray(crystal.cell, np.float64))
        counts.append(crystal.n_atoms)
    save_npz(
        out_path,
        names=np.array(ok_names, dtype=str),
        species=np.concatenate(species) if species else np.zeros(0, np.int16),
        positions=np.concatenate(positions) if positions else np.zeros((0, 3)),
        cells=np.array(cells).reshape(-1, 3, 3),
        counts=np.array(counts, np.int64),
        failed=np.array(failed, dtype=str),
        reasons=np.array(reasons, dtype=str),
    )


def parse(
    subset: str = "2019-ASR",
    *,
    workers: int | None = None,
    progress: bool = True,
    names: Sequence[str] | None = None,
    read_options: dict | None = None,
) -> list[Path]:
    """Parse the CIFs of a subset once into ``.npz`` chunks; resumes an interrupted parse.

    Chunk ``k`` always holds the names ``CHUNK_SIZE * k`` to ``CHUNK_SIZE * (k + 1) - 1`` of the
    CSV, whoever asked for it, so partial requests never overwrite or thrash the cache.

    Args:
        subset: ``"2014"``, ``"2019-ASR"`` or ``"2019-FSR"``.
        workers: parallel processes (default: CPU count).
        progress: show a progress bar.
        names: parse only the chunks that hold these names (default: all).
        read_options: keyword arguments for :func:`jmof.read` (e.g. ``{"disorder": "majority"}``).

    Returns:
        The chunk files that hold ``names``.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    read_options = dict(read_options or {})
    cif_dir = extract(subset, progress=progress)
    all_names = list_names(subset)
    position = {name: k for k, name in enumerate(all_names)}
    wanted = all_names if names is None else names
    chunks = sorted({position[name] // CHUNK_SIZE for name in wanted})
    out_dir = subset_dir(subset) / f"parsed-{_parse_key(read_options)}"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, jobs = [], []
    for k in chunks:
        path = out_dir / f"chunk-{k:05d}.npz"
        paths.append(path)
        chunk = all_names[k * CHUNK_SIZE : (k + 1) * CHUNK_SIZE]
        if path.exists() and _chunk_names(path) == set(chunk):
            continue
        jobs.append((chunk, str(cif_dir), str(path), read_options))
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    total = min(len(all_names), len(chunks) * CHUNK_SIZE)
    with _progress(progress) as bar:
        task = bar.add_task(f"parsing CoRE MOF {subset}", total=total)
        bar.advance(task, total - sum(len(j[0]) for j in jobs))
        if workers == 1:
            for job in jobs:
                _parse_chunk(job)
                bar.advance(task, len(job[0]))
        elif jobs:
            # spawn: forking a process that has started JAX's threads can deadlock.
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                for job, _ in zip(jobs, pool.map(_parse_chunk, jobs)):
                    bar.advance(task, len(job[0]))
    return paths


def _chunk_names(path: Path) -> set[str]:
    with np.load(path) as z:
        return set(z["names"].tolist()) | set(z["failed"].tolist())


def load(
    subset: str = "2019-ASR",
    *,
    names: Sequence[str] | None = None,
    limit: int | None = None,
    max_atoms: int | None = None,
    elements: Sequence[int | str] | None = None,
    workers: int | None = None,
    progress: bool = True,
    read_options: dict | None = None,
) -> Dataset:
    """CoRE MOF structures and their Zeo++ properties as a :class:`~jmof.data.Dataset`.

    The first call extracts and parses the subset (minutes for 2019-ASR, with a progress bar;
    resumable); later calls read the parsed cache. Structures that fail validation are listed in
    ``dataset.failures`` with the reason, as are those removed by ``max_atoms`` or ``elements``.

    Args:
        subset: ``"2014"``, ``"2019-ASR"`` or ``"2019-FSR"``.
        names: only these structures (they must be in the subset).
        limit: only the first ``limit`` structures of the CSV (parses only the chunks that
            hold them).
        max_atoms, elements: filters, see :meth:`Dataset.filter`.
        workers, progress, read_options: see :func:`parse`.
    """
    all_names = list_names(subset)
    if names is not None:
        unknown = sorted(set(names) - set(all_names))
        if unknown:
            raise KeyError(f"{len(unknown)} names not in CoRE MOF {subset}: {unknown[:5]}")
    requested = all_names[:limit] if names is None else list(names)
    chunk_paths = parse(
        subset, workers=workers, progress=progress, names=requested, read_options=read_options
    )
    wanted = set(requested)
    crystals: dict[str, Crystal] = {}
    failures: list[Failure] = []
    for path in chunk_paths:
        with np.load(path) as z:
            offsets = np.concatenate([[0], np.cumsum(z["counts"])])
            species, positions, cells = z["species"], z["positions"], z["cells"]
            for k, name in enumerate(z["names"].tolist()):
                if name in wanted:
                    atoms = slice(offsets[k], offsets[k + 1])
                    crystals[name] = Crystal(
                        species=species[atoms].astype(np.int32),
                        positions=positions[atoms],
                        cell=cells[k],
                    )
            for name, reason in zip(z["failed"].tolist(), z["reasons"].tolist()):
                if name in wanted:
                    failures.append(Failure(name, reason))
    order = [n for n in requested if n in crystals]
    table = properties(subset)
    targets = {
        key: np.array([float(table[n][key]) for n in order], dtype=np.float64)
        for key in numeric_targets(subset)
    }
    dataset = Dataset(
        source=f"coremof/{subset}",
        names=tuple(order),
        crystals=tuple(crystals[n] for n in order),
        targets=targets,
        failures=tuple(failures),
    )
    if max_atoms is not None or elements is not None:
        dataset = dataset.filter(max_atoms=max_atoms, elements=elements)
    return dataset


def _progress(enabled: bool):
    from jmof.progress import progress_bar

    return progress_bar(enabled)
