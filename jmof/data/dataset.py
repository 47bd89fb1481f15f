"""A labelled set of crystals with deterministic splits, filters and a table of failures."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from jmof.structure import Crystal

SPLITS = ("train", "val", "test")


def _name_hash(name: str, salt: str) -> float:
    """A number in [0, 1) from SHA-256 of ``salt/name``: the same on every machine."""
    digest = hashlib.sha256(f"{salt}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(name: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), salt: str = "jmof") -> str:
    """The split (``"train"``, ``"val"`` or ``"test"``) a structure belongs to, from its name alone.

    The name is hashed (SHA-256 of ``salt/name``) to a number u in [0, 1); the split is the
    interval of ``fractions`` that holds u. Adding or removing structures never moves another
    one to a different split, and the assignment is the same on every machine.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    u = _name_hash(name, salt)
    edges = np.cumsum(fractions)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), 2)]


@dataclasses.dataclass(frozen=True)
class Failure:
    """A structure left out of a dataset, and why (validation error or filter)."""

    name: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Crystals with names, per-structure targets and the structures that were left out.

    Attributes:
        source: where the data come from, e.g. ``"coremof/2019-ASR"``.
        names: [n] structure names (unique).
        crystals: [n] validated crystals, aligned with ``names``.
        targets: target name -> [n] float64 array (NaN where a value is missing).
        failures: structures that failed validation or were filtered out, with the reason.
        node_targets: per-atom target name -> one [n_atoms_k, ...] float64 array per structure
          (e.g. ``"forces"``, [n_atoms_k, 3] eV/Å); NaN where missing.
    """

    source: str
    names: tuple[str, ...]
    crystals: tuple[Crystal, ...]
    targets: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    node_targets: dict[str, tuple[np.ndarray, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if len(self.names) != len(self.crystals):
            raise ValueError(f"{len(self.names)} names for {len(self.crystals)} crystals")
        for key, values in self.node_targets.items():
            sizes = [len(v) for v in values]
            if sizes != [c.n_atoms for c in self.crystals]:
                raise ValueError(f"node target {key!r} does not have one row per atom")
        for key, values in self.targets.items():
            if len(values) != len(self.names):
                raise ValueError(
                    f"target {key!r} has {len(values)} values for {len(self.names)} names"
                )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> Crystal:
        try:
            return self.crystals[self._index[name]]
        except KeyError:
            raise KeyError(f"{name!r} is not in {self.source} ({len(self)} structures)") from None

    @property
    def _index(self) -> dict[str, int]:
        return {name: k for k, name in enumerate(self.names)}

    @property
    def n_atoms(self) -> np.ndarray:
        """[n] int, atoms per structure."""
        return np.array([c.n_atoms for c in self.crystals], dtype=np.int64)

    def target_array(self, keys: Sequence[str]) -> np.ndarray:
        """[n, len(keys)] float64, the chosen targets side by side (NaN where missing)."""
        missing = [k for k in keys if k not in self.targets]
        if missing:
            raise KeyError(f"unknown targets {missing}; {self.source} has {sorted(self.targets)}")
        return (
            np.stack([self.targets[k] for k in keys], axis=1) if keys else np.zeros((len(self), 0))
        )

    def take(self, indices: Iterable[int], dropped_reason: str | None = None) -> Dataset:
        """The structures at ``indices``; the others are recorded as failures with
        ``dropped_reason`` when it is given (filters), or left out silently (splits)."""
        indices = np.asarray(list(indices), dtype=np.int64)
        failures = self.failures
        if dropped_reason is not None:
            keep = np.zeros(len(self), bool)
            keep[indices] = True
            failures += tuple(
                Failure(
                    self.names[k], dropped_reason(k) if callable(dropped_reason) else dropped_reason
                )
                for k in np.flatnonzero(~keep)
            )
        return Dataset(
            source=self.source,
            names=tuple(self.names[k] for k in indices),
            crystals=tuple(self.crystals[k] for k in indices),
            targets={key: values[indices] for key, values in self.targets.items()},
            failures=failures,
            node_targets={
                key: tuple(values[k] for k in indices) for key, values in self.node_targets.items()
            },
        )

    def filter(
        self, *, max_atoms: int | None = None, elements: Iterable[int | str] | None = None
    ) -> Dataset:
        """Keep structures with at most ``max_atoms`` atoms and only the given ``elements``
        (atomic numbers or symbols). Excluded structures are listed in ``failures``."""
        from ase.data import atomic_numbers, chemical_symbols

        allowed = None
        if elements is not None:
            allowed = {atomic_numbers[e] if isinstance(e, str) else int(e) for e in elements}

        def reason(k: int) -> str | None:
            crystal = self.crystals[k]
            if max_atoms is not None and crystal.n_atoms > max_atoms:
                return f"filtered: {crystal.n_atoms} atoms > max_atoms={max_atoms}"
            if allowed is not None:
                extra = sorted(set(np.asarray(crystal.species).tolist()) - allowed)
                if extra:
                    return "filtered: elements " + ",".join(chemical_symbols[z] for z in extra)
            return None

        reasons = [reason(k) for k in range(len(self))]
        keep = [k for k, r in enumerate(reasons) if r is None]
        return self.take(keep, dropped_reason=lambda k: reasons[k])

    def sample(self, n: int, salt: str = "jmof-sample") -> Dataset:
        """``n`` structures chosen by a hash of their names (deterministic, independent of the
        dataset's order, and a sample of n is contained in every larger sample), kept in
        dataset order."""
        if n >= len(self):
            return self
        ranked = sorted(range(len(self)), key=lambda k: _name_hash(self.names[k], salt))
        return self.take(sorted(ranked[:n]))

    def split(
        self,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        salt: str = "jmof",
        group: Callable[[str], str] | None = None,
    ) -> dict[str, Dataset]:
        """``{"train", "val", "test"}`` sub-datasets by :func:`split_of` on each name, or on
        ``group(name)`` so that related structures land in the same split (e.g. all
        configurations of one MOF: ``group=lambda name: name.split("/")[0]``)."""
        key = group or (lambda name: name)
        labels = [split_of(key(name), fractions, salt) for name in self.names]
        return {s: self.take([k for k, lab in enumerate(labels) if lab == s]) for s in SPLITS}

    def failure_table(self) -> list[tuple[str, int]]:
        """``(reason category, count)`` sorted by count: the reason up to its first colon or
        parenthesis, so that one category gathers every structure with the same problem."""
        from collections import Counter

        counts = Counter(failure_category(f.reason) for f in self.failures)
        return counts.most_common()


_CATEGORIES = (  # (pattern in a StructureError message or filter reason, category), first wins
    (r"^filtered: elements", "filtered: elements"),
    (r"^filtered: .*max_atoms", "filtered: too many atoms"),
    (r"Å apart", "overlapping atoms (closer than the physical minimum)"),
    (r"partially occupied|occupancy", "partially occupied sites (disorder)"),
    (r"file is empty", "empty file"),
    (r"binary", "binary file"),
    (r"truncated|incomplete|ends inside", "truncated file"),
    (r"no unit cell|cell", "invalid cell"),
    (r"element|species", "unknown element"),
    (r"not finite|non-finite|NaN|infinite", "non-finite coordinates"),
    (r"data block", "data blocks"),
)


def failure_category(reason: str) -> str:
    """A short category of a failure reason (validation error or filter), for summary tables."""
    import re

    for pattern, category in _CATEGORIES:
        if re.search(pattern, reason):
            return category
    text = re.sub(r"\([^)]*\)", "", reason)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return " ".join(text.split())[:80]
