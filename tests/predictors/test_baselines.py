"""Baselines and metrics: hand-computed means and metric values, GBM against the mean on a
synthetic non-linear function, NaN masking, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.baselines import GBMConfig, MeanPredictor, fit_gbm, predict
from predictors.metrics import evaluate, mae, r2, roc_auc, spearman


def test_mean_predictor_is_the_hand_mean():
    Y = np.array([[1.0, 0.0], [2.0, 1.0], [np.nan, 1.0], [6.0, np.nan]])
    model = MeanPredictor().fit(None, Y)
    expected = [(1.0 + 2.0 + 6.0) / 3, (0 + 1 + 1) / 3]  # labelled rows only
    np.testing.assert_allclose(predict(model, np.zeros((5, 7))), np.tile(expected, (5, 1)))
    with pytest.raises(ValueError, match="not fitted"):
        MeanPredictor().predict(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="no labels"):
        MeanPredictor().fit(None, np.full((3, 1), np.nan))


def test_metrics_by_hand():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 5.0])
    assert mae(t, p) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    # SS_res = 0.25 + 0 + 1 + 1 = 2.25; SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    assert r2(t, p) == pytest.approx(1 - 2.25 / 5)
    assert r2(t, t) == 1.0 and r2(t, np.full(4, t.mean())) == 0.0
    # Ranks of p = (1.5, 2, 2, 5) with the tie averaged: (1, 2.5, 2.5, 4).
    rt, rp = np.array([1, 2, 3, 4.0]), np.array([1, 2.5, 2.5, 4.0])
    rho = np.corrcoef(rt, rp)[0, 1]
    assert spearman(t, p) == pytest.approx(rho)
    assert spearman(t, np.exp(t)) == pytest.approx(1.0) and spearman(t, -t) == pytest.approx(-1)

    labels = np.array([0, 0, 1, 1, 0, 1.0])
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7])
    assert roc_auc(labels, scores) == 1.0
    assert roc_auc(labels, -scores) == 0.0
    # One positive-negative pair out of order in 3 × 3 = 9: AUC = 8 / 9.
    assert roc_auc(labels, [0.1, 0.2, 0.8, 0.9, 0.75, 0.7]) == pytest.approx(8 / 9)


def test_metrics_mask_missing_labels():
    t = np.array([1.0, np.nan, 3.0])
    assert mae(t, [2.0, 100.0, 3.0]) == pytest.approx(0.5)
    assert np.isnan(roc_auc([1.0, 1.0, np.nan], [0.2, 0.3, 0.4]))  # one class only
    report = evaluate(
        np.array([[1.0, 0.0], [2.0, 1.0], [3.0, np.nan]]),
        np.array([[1.0, 0.2], [2.0, 0.9], [3.0, 0.5]]),
        ["regression", "classification"],
        ["LCD", "Has_OMS"],
    )
    assert report["LCD"]["r2"] == 1.0 and report["LCD"]["mae"] == 0.0
    assert report["Has_OMS"] == {"n": 2.0, "roc_auc": 1.0}
    with pytest.raises(ValueError, match="unknown target kinds"):
        evaluate(np.zeros((2, 1)), np.zeros((2, 1)), ["ranking"])


def _synthetic(n, rng):
    X = rng.uniform(-2, 2, size=(n, 5))
    y = np.sin(2 * X[:, 0]) * X[:, 1] + np.abs(X[:, 2]) + 0.05 * rng.normal(size=n)
    label = (X[:, 0] * X[:, 3] > 0).astype(float)  # XOR-like: invisible to any linear model
    return X, np.stack([y, label], axis=1)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    X, Y = _synthetic(3000, rng)
    Y[rng.random(len(Y)) < 0.1, 0] = np.nan  # missing labels are masked, not fitted
    return (X[:2000], Y[:2000]), (X[2000:2500], Y[2000:2500]), (X[2500:], Y[2500:])


def test_gbm_beats_the_mean(synthetic):
    (Xt, Yt), (Xv, Yv), (Xs, Ys) = synthetic
    kinds = ["regression", "classification"]
    config = GBMConfig(learning_rate=0.1, n_iter_no_change=20)
    gbm = fit_gbm(Xt, Yt, Xv, Yv, kinds, config=config)
    mean = MeanPredictor().fit(Xt, Yt)
    ours, base = evaluate(Ys, predict(gbm, Xs), kinds), evaluate(Ys, predict(mean, Xs), kinds)
    assert ours["0"]["r2"] > 0.9 and ours["0"]["mae"] < 0.5 * base["0"]["mae"]
    assert ours["1"]["roc_auc"] > 0.95
    assert base["0"]["r2"] == pytest.approx(0.0, abs=0.02)
    # Early stopping on the validation split ends well before the cap.
    assert all(0 < n < config.max_iter for n in gbm.n_iter)
    # Fixed random_state: refitting gives identical predictions.
    again = fit_gbm(Xt, Yt, Xv, Yv, kinds, config=config)
    np.testing.assert_array_equal(predict(again, Xs), predict(gbm, Xs))


def test_gbm_validates_inputs(synthetic):
    (Xt, Yt), (Xv, Yv), _ = synthetic
    with pytest.raises(ValueError, match="classification labels"):
        fit_gbm(Xt, Yt[:, :1] * 3, Xv, Yv[:, :1], ["classification"])
    with pytest.raises(ValueError, match="validation labels"):
        fit_gbm(Xt, Yt[:, :1], Xv, np.full((len(Xv), 1), np.nan), ["regression"])
    with pytest.raises(ValueError, match="rows differ"):
        fit_gbm(Xt, Yt[:10], Xv, Yv, ["regression", "classification"])
    # A classification target with a single training class predicts that class.
    single = fit_gbm(Xt, np.ones((len(Xt), 1)), Xv, np.ones((len(Xv), 1)), ["classification"])
    np.testing.assert_array_equal(predict(single, Xv[:3]), np.ones((3, 1)))
