"""Descriptor baselines on CoRE MOF 2019-ASR: mean predictor and gradient boosting (issue 4).

    python experiments/bench_predictor_baselines.py [--sizes 500 1000 2000 5000 0]

Every structure that passes validation, deterministic 80/10/10 split by name hash
(``jmof.data.split_of``). Targets from the package CSV: LCD, PLD, density (column ``cm3_g``),
gravimetric accessible surface area (ASA_m2_g), accessible void fraction (AV_VF) as regression and
open-metal-site presence (Has_OMS) as classification. Features (composition, RACs, cell) are
computed once and cached in ``$JMOF_CACHE/features/``. Learning curves train on the first N
training structures in a fixed shuffled order (0 = all) and always test on the full test split.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
from _common import save

TARGETS = ("LCD", "PLD", "cm3_g", "ASA_m2_g", "AV_VF", "Has_OMS")
KINDS = ("regression",) * 5 + ("classification",)


def cached_features(dataset):
    """[n, F] descriptor matrix of ``dataset`` (cached on disk by the names it covers)."""
    from jmof.data import cache_root
    from predictors.descriptors import featurize

    key = hashlib.sha256("\n".join(dataset.names).encode()).hexdigest()[:12]
    path = cache_root() / "features" / f"{dataset.source.replace('/', '-')}-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["X"], list(z["names"])
    start = time.perf_counter()
    X, names = featurize(dataset.crystals, progress=True)
    print(f"featurized {len(dataset)} structures in {time.perf_counter() - start:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=X, names=np.array(names))
    return X, names


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000, 0])
    args = parser.parse_args()

    from jmof.data import coremof, split_of
    from predictors.baselines import MeanPredictor, fit_gbm, predict
    from predictors.metrics import evaluate

    dataset = coremof.load("2019-ASR")
    X, feature_names = cached_features(dataset)
    Y = dataset.target_array(TARGETS)
    labels = np.array([split_of(n) for n in dataset.names])
    train, val, test = (np.flatnonzero(labels == s) for s in ("train", "val", "test"))
    order = np.random.default_rng(0).permutation(train)
    print(
        f"{len(dataset)} structures: {len(train)} train, {len(val)} val, {len(test)} test; "
        f"{X.shape[1]} features"
    )

    rows = []
    for size in args.sizes:
        subset = order if size == 0 else order[:size]
        for family in ("mean", "gbm"):
            start = time.perf_counter()
            if family == "mean":
                model = MeanPredictor().fit(X[subset], Y[subset])
            else:
                model = fit_gbm(X[subset], Y[subset], X[val], Y[val], KINDS)
            fit_s = time.perf_counter() - start
            metrics = evaluate(Y[test], predict(model, X[test]), KINDS, TARGETS)
            row = {
                "family": family,
                "n_train": len(subset),
                "fit_s": round(fit_s, 1),
                "metrics": metrics,
            }
            rows.append(row)
            summary = ", ".join(
                f"{t}: "
                + (
                    f"AUC {m['roc_auc']:.3f}"
                    if "roc_auc" in m
                    else f"MAE {m['mae']:.3g} R² {m['r2']:.3f}"
                )
                for t, m in metrics.items()
            )
            print(f"{family} n={len(subset)} ({fit_s:.0f} s): {summary}")
    save(
        "predictor_baselines",
        {
            "targets": TARGETS,
            "kinds": KINDS,
            "n_features": X.shape[1],
            "split_sizes": {"train": len(train), "val": len(val), "test": len(test)},
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
