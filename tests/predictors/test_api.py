"""predictors.fit / load / predict and the train-predictor / predict commands, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import predictors
from jmof.cli import main
from jmof.data import coremof
from predictors.api import evaluate_split, infer_kinds
from predictors.cgcnn import CGCNNConfig

TARGETS = ("LCD", "cm3_g", "Has_OMS")
SMALL = CGCNNConfig(
    cutoff=6.0, max_neighbors=8, n_gaussians=16, features=16, n_conv=1, hidden=(16,)
)
FIT = dict(config=SMALL, n_models=2, n_epochs=3, batch_nodes=1024, progress=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    dataset = coremof.load("2019-ASR", limit=3000, max_atoms=80, progress=False)
    out = tmp_path_factory.mktemp("predictor")
    model = predictors.fit(dataset, TARGETS, out_dir=out, **FIT)
    return dataset, out, model


def test_outputs_written(run):
    _, out, model = run
    assert model.kinds == ("regression", "regression", "classification")
    assert model.config.n_members == 2
    for name in ("metrics.json", "parity.png", "learning_curve.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["metrics"]) == set(TARGETS)
    assert len(report["history"]) == 3


def test_load_rebuilds_the_same_predictions(run):
    dataset, out, model = run
    loaded = predictors.load(out)
    test = dataset.split()["test"]
    mean_a, std_a = predictors.predict(model, test.crystals)
    mean_b, std_b = predictors.predict(loaded, test.crystals)
    np.testing.assert_array_equal(mean_a, mean_b)
    np.testing.assert_array_equal(std_a, std_b)
    assert np.all(std_a[:, :2] > 0)  # two members disagree
    assert np.all((mean_a[:, 2] >= 0) & (mean_a[:, 2] <= 1))


def test_metrics_match_a_hand_computation(run):
    dataset, out, model = run
    test = dataset.split()["test"]
    report = evaluate_split(model, test)
    mean, _ = predictors.predict(model, test.crystals)
    truth = test.target_array(TARGETS)
    assert report["metrics"]["LCD"]["mae"] == pytest.approx(
        np.nanmean(np.abs(mean[:, 0] - truth[:, 0]))
    )
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"]["LCD"]["mae"] == pytest.approx(report["metrics"]["LCD"]["mae"])


def test_fit_again_resumes_instead_of_retraining(run):
    dataset, out, model = run
    again = predictors.fit(dataset, TARGETS, out_dir=out, plots=False, **FIT)
    for a, b in zip(
        np.asarray(predictors.predict(model, dataset.crystals[:5])[0]),
        np.asarray(predictors.predict(again, dataset.crystals[:5])[0]),
    ):
        np.testing.assert_array_equal(a, b)


def test_predict_command(run, capsys):
    dataset, out, model = run
    cif_dir = coremof.extract("2019-ASR", progress=False)
    name = dataset.names[0]
    assert main(["predict", str(out), str(cif_dir / f"{name}.cif"), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    mean, std = predictors.predict(model, [dataset[name]])
    assert record["LCD"] == pytest.approx(mean[0, 0], rel=1e-6)
    assert record["Has_OMS_std"] == pytest.approx(std[0, 2], abs=1e-7)


def test_infer_kinds():
    values = np.array([[0.0, 1.5, np.nan], [1.0, 2.0, 1.0], [np.nan, 0.0, 0.0]])
    assert infer_kinds(values) == ("classification", "regression", "classification")


def test_load_refuses_other_checkpoints(tmp_path):
    from jmof.checkpoint import save_model

    save_model(tmp_path / "m", {"w": np.zeros(2)}, SMALL)
    with pytest.raises(ValueError, match="not a predictors model"):
        predictors.load(tmp_path / "m")


def test_training_in_chunks_equals_one_call(run, tmp_path):
    dataset, out, model = run
    kwargs = dict(FIT, plots=False)
    assert predictors.fit(dataset, TARGETS, out_dir=tmp_path, stop_after_steps=2, **kwargs) is None
    chunked = predictors.fit(dataset, TARGETS, out_dir=tmp_path, **kwargs)
    a = predictors.predict(model, dataset.crystals[:5])[0]
    b = predictors.predict(chunked, dataset.crystals[:5])[0]
    np.testing.assert_array_equal(a, b)


def test_combining_members_gives_back_the_ensemble(run):
    dataset, _, model = run
    import dataclasses

    import jax

    from predictors.ensemble import EnsembleConfig

    single = EnsembleConfig(model=model.config.model, n_members=1)
    parts = [
        predictors.Predictor(single, jax.tree.map(lambda x, k=k: x[k : k + 1], model.params))
        for k in range(2)
    ]
    crystals = dataset.split()["test"].crystals[:20]
    mean, std = predictors.predict(predictors.combine(parts), crystals)
    ref_mean, ref_std = predictors.predict(model, crystals)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, ref_std, rtol=1e-5, atol=1e-6)
    swapped = predictors.combine(parts[::-1])
    np.testing.assert_allclose(predictors.predict(swapped, crystals)[0], ref_mean, rtol=1e-6)
    other = dataclasses.replace(model.config.model, features=8)
    stranger = predictors.Predictor(EnsembleConfig(model=other, n_members=1), parts[0].params)
    with pytest.raises(ValueError, match="different member config"):
        predictors.combine([parts[0], stranger])
