"""Descriptor baselines for adsorption targets on the labelled CoRE MOFs (issues 4 and 6).

    python experiments/bench_adsorption_predictors.py [--graph] [--budget-steps N] [--limit N]

Labels: ``experiments/results/coremof_adsorption.csv`` (built by ``build_adsorption_data.py``;
whatever part of CoRE MOF 2019-ASR it covers so far). Targets: log10 K_H of CH4, Kr and Xe at
298 K (mol kg⁻¹ Pa⁻¹) and their heats of adsorption q_st (kJ/mol). Split: the project's 80/10/10
name-hash split (``jmof.data.split_of``), restricted to labelled structures. Gradient boosting
(one model per target, early-stopped on the validation part) on three nested feature sets:

1. composition, RACs and cell features (``predictors.descriptors``, as the issue-4 baseline);
2. plus jmof's geometric descriptors (LCD, PLD, LFPD, ASA, void fractions, helium void fraction);
3. plus the adsorption descriptors: the CH4 energy histogram (Bucior) and the average Boltzmann
   factor of CH4 (Fanourgakis; ⟨W⟩ = K_H·R·T·ρ). They come from the same CH4 insertions as the
   CH4 labels, so with them the CH4 targets would be read off their own estimate: set 3 is
   scored on the Kr and Xe targets only (a CH4 probe describing other guests, as Bucior et al.
   use a probe's histogram to predict uptakes).

With ``--graph`` the graph network of issue 4 (``predictors.fit``, default CGCNN: 8 Å, 12
neighbours, 64 features, 3 convolutions, cell features) is trained on the same split and all six
targets, for at least 30,000 structure passes (as the issue-4 learning curve), in resumable
chunks under ``experiments/runs/adsorption-cgcnn-<n labelled>/`` (``--budget-steps``: stop
after that many steps; the same command continues), and its test metrics are added as a row.

Writes ``experiments/results/adsorption_predictors.json`` (test MAE and R² per target and
feature set, and the number of structures); with ``--limit N`` only the first N labelled
structures are used (a fixed uniform subset while the build goes on) and the results go to
``adsorption_predictors_n<N>.json``. Labels whose Widom estimate has not converged
(``MAX_KH_REL_ERR``, ``MAX_QST_ERR``) are left out of training and scoring, target by target;
``--all-labels`` keeps them (suffix ``-all``).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from _common import RESULTS, save

GUESTS = ("CH4", "Kr", "Xe")
TARGETS = tuple(f"log10_kh_{g}" for g in GUESTS) + tuple(f"qst_{g}" for g in GUESTS)
GEOMETRY = ("lcd", "pld", "lfpd", "asa_m2_g", "asa_m2_cm3", "av_vf", "gvf", "he_vf")
R = 8.314462618
# Labels whose Widom estimate is not converged are masked (NaN) in training and scoring: a
# structure that a guest barely enters gets K_H from a few insertions (log10 K_H down to -30,
# q_st down to -300 kJ/mol in the raw labels), noise that no model can predict.
MAX_KH_REL_ERR = 0.2  # 1σ relative error of K_H (0.09 in log10 K_H)
MAX_QST_ERR = 1.0  # kJ/mol, 1σ
RUNS = Path(__file__).parent / "runs"


def load_labels(limit: int | None = None) -> dict[str, dict[str, float]]:
    """The label rows by name; with ``limit`` the first ``limit`` rows (the build labels in
    name-hash order, so any prefix is a uniform sample of 2019-ASR)."""
    with open(RESULTS / "coremof_adsorption.csv") as f:
        rows = list(csv.DictReader(f))
    if limit is not None:
        if limit > len(rows):
            raise SystemExit(f"--limit {limit}: only {len(rows)} structures are labelled")
        rows = rows[:limit]
    return {row["name"]: {k: float(v) for k, v in row.items() if k != "name"} for row in rows}


def label_matrix(rows: list[dict], converged: bool = True) -> np.ndarray:
    """[n, 6] log10 K_H (mol kg⁻¹ Pa⁻¹) and q_st (kJ/mol) of CH4, Kr, Xe; with ``converged``
    NaN where the estimate's 1σ error exceeds ``MAX_KH_REL_ERR`` (relative, K_H; both targets
    of that guest) or ``MAX_QST_ERR`` (q_st)."""
    Y = np.full((len(rows), len(TARGETS)), np.nan)
    for i, r in enumerate(rows):
        for k, g in enumerate(GUESTS):
            kh, qst = r[f"kh_{g}"], r[f"qst_{g}"]
            ok = kh > 0 and r[f"kh_{g}_err"] <= MAX_KH_REL_ERR * kh
            if ok or not converged:
                Y[i, k] = np.log10(max(kh, 1e-30))
            if (ok and r[f"qst_{g}_err"] <= MAX_QST_ERR) or not converged:
                Y[i, len(GUESTS) + k] = qst
    return Y


def graph_network(dataset, names, Y, budget_steps, suffix=""):
    """Test metrics of a CGCNN trained on ``names`` (targets ``Y`` [n, 6]), or None while the
    run is unfinished."""
    from bench_predictor_accuracy import epochs_for

    import predictors
    from jmof.data import Dataset, split_of

    index = {n: k for k, n in enumerate(dataset.names)}
    data = Dataset(
        source=f"{dataset.source} + adsorption labels",
        names=tuple(names),
        crystals=tuple(dataset.crystals[index[n]] for n in names),
        targets={t: Y[:, k] for k, t in enumerate(TARGETS)},
    )
    n_train = sum(split_of(n) == "train" for n in names)
    epochs = epochs_for(n_train, 15)
    out = RUNS / f"adsorption-cgcnn-{len(names)}{suffix}"
    model = predictors.fit(
        data, TARGETS, kinds=("regression",) * len(TARGETS), out_dir=out, n_epochs=epochs,
        stop_after_steps=budget_steps,
    )  # fmt: skip
    if model is None:
        print(f"{out.name}: stopped after the step budget; run the same command to continue")
        return None
    report = json.loads((out / "metrics.json").read_text())
    return {"features": "CGCNN (graph network)", "epochs": epochs, "metrics": report["metrics"]}


def main():
    from bench_predictor_baselines import cached_features

    from jmof.data import coremof, split_of
    from predictors.baselines import fit_gbm, predict
    from predictors.metrics import evaluate

    parser = argparse.ArgumentParser()
    parser.add_argument("--graph", action="store_true", help="also train the graph network")
    parser.add_argument("--budget-steps", type=int, default=None)
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use the first N labelled structures (results in adsorption_predictors_n<N>.json)",
    )
    parser.add_argument(
        "--all-labels",
        action="store_true",
        help="keep unconverged Widom labels (results and runs with the suffix -all)",
    )
    args = parser.parse_args()
    labels = load_labels(args.limit)
    suffix = "-all" if args.all_labels else ""
    result_name = "adsorption_predictors" + (f"_n{args.limit}" if args.limit else "") + suffix
    dataset = coremof.load("2019-ASR", progress=False)
    X_all, _ = cached_features(dataset)
    index = {n: k for k, n in enumerate(dataset.names)}
    names = [n for n in labels if n in index]
    rows = [labels[n] for n in names]
    X_rac = X_all[[index[n] for n in names]]
    X_geo = np.array([[r[k] for k in GEOMETRY] for r in rows])
    hist_cols = sorted((k for k in rows[0] if k.startswith("hist_CH4_")), key=lambda k: int(k[9:]))
    abf = np.array([r["kh_CH4"] * R * 298.0 * r["density"] * 1000.0 for r in rows])
    X_ads = np.column_stack([np.array([[r[k] for k in hist_cols] for r in rows]), abf])
    Y = label_matrix(rows, converged=not args.all_labels)
    split = np.array([split_of(n) for n in names])
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    results = {
        "n_labelled": len(names),
        "split": [len(train), len(val), len(test)],
        "converged_only": not args.all_labels,
        "max_kh_rel_err": MAX_KH_REL_ERR,
        "max_qst_err_kJ_mol": MAX_QST_ERR,
        # Structures with a label per target, by split (train, val, test).
        "n_per_target": {
            t: [int(np.isfinite(Y[part, k]).sum()) for part in (train, val, test)]
            for k, t in enumerate(TARGETS)
        },
        "rows": [],
    }
    feature_sets = {
        "RACs + cell": X_rac,
        "+ geometry": np.column_stack([X_rac, X_geo]),
        "+ geometry + energy histogram + ABF": np.column_stack([X_rac, X_geo, X_ads]),
    }
    for label, X in feature_sets.items():
        cols = [k for k, t in enumerate(TARGETS) if "CH4" not in t or "histogram" not in label]
        targets = [TARGETS[k] for k in cols]
        kinds = ("regression",) * len(cols)
        model = fit_gbm(X[train], Y[train][:, cols], X[val], Y[val][:, cols], kinds)
        metrics = evaluate(Y[test][:, cols], predict(model, X[test]), kinds, targets)
        results["rows"].append({"features": label, "n_features": X.shape[1], "metrics": metrics})
        print(label, {t: (round(m["mae"], 3), round(m["r2"], 3)) for t, m in metrics.items()})
    save(result_name, results)
    if args.graph:
        row = graph_network(dataset, names, Y, args.budget_steps, suffix)
        if row is None:
            return
        results["rows"].append(row)
        print(row["features"], {t: (round(m["mae"], 3), round(m["r2"], 3))
                                for t, m in row["metrics"].items()})  # fmt: skip
        save(result_name, results)


if __name__ == "__main__":
    main()
