"""Model families: estimators built from ``conf/model/*.yaml``, fitted and ensembled."""

from automl.models.early_stopping import EarlyStopping
from automl.models.estimator import build_model, model_param_prefix, model_space

__all__ = ["EarlyStopping", "build_model", "model_param_prefix", "model_space"]
