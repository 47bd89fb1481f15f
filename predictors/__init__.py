"""Property predictors: descriptor baselines, CGCNN graph networks and deep ensembles."""

from predictors.api import Predictor, combine, fit, load, predict

__all__ = ["Predictor", "combine", "fit", "load", "predict"]
