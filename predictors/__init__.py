"""Property predictors: descriptor baselines, CGCNN graph networks and deep ensembles."""

from predictors.api import Predictor, fit, load, predict

__all__ = ["Predictor", "fit", "load", "predict"]
