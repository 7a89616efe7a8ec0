"""scikit-learn estimators over ``automl.fit``: ``AutoMLClassifier`` and ``AutoMLRegressor``.

Parameters live in ``__init__`` (clone-able; usable in a ``Pipeline``, ``cross_val_score``
or a grid search); ``fit`` trains with ``automl.fit`` in a temporary folder (its data set
YAML, run directory and bundle) with tracking and registration off, and keeps the trained
model in memory. As on the command line, ``evaluation.test_size`` of the rows (20 %) is
held out for the figures in ``metrics_``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

TARGET = "__target__"
# for a fit inside an estimator: no tracking, no registry, no plots
QUIET = ["tracking=none", "registry.enabled=false", "evaluation.plots=false"]
# predict takes any finite numbers and any category, as scikit-learn estimators do
OPEN_CONTRACT = ["contract.range_margin=null", "contract.max_allowed=0"]


class _AutoML(BaseEstimator):
    """What the classifier and the regressor share: the training, the frames."""

    _task: str = ""

    def __init__(
        self,
        model: str = "auto",
        time_budget: float | None = 60,
        n_trials: int | None = None,
        seed: int = 42,
        overrides: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.time_budget = time_budget
        self.n_trials = n_trials
        self.seed = seed
        self.overrides = overrides

    def _train(self, X: Any, y: Any, task: str, positive: Any = None) -> None:
        """Train on ``X`` (checked by ``validate_data`` already) and the text/float ``y``."""
        from automl.api import fit, value

        frame = self._frame(X).assign(**{TARGET: y})
        budget, trials = self.time_budget, self.n_trials
        settings = [
            f"model={self.model}",
            f"search.time_budget={'null' if budget is None else budget}",
            f"search.n_trials={'null' if trials is None else trials}",
            f"seed={self.seed}",
            *QUIET,
        ]
        if positive is not None:
            settings.append(f"dataset.positive_class={value(positive)}")
        with tempfile.TemporaryDirectory(prefix="automl-estimator-") as folder:
            trained = fit(
                frame, TARGET, task=task, name="estimator", conf_dir=Path(folder) / "conf",
                ingest=OPEN_CONTRACT,
                overrides=[*settings, f"paths.output_dir={Path(folder) / 'out'}", *self.overrides],
            )  # fmt: skip
            self.leaderboard_ = trained.leaderboard()
        self.model_ = trained.model
        self.metrics_ = trained.metrics

    def _check(self, X: Any, y: Any) -> Any:
        """``validate_data`` as fit needs it (NaN allowed; inf, empty input, no y or a
        single row refused); returns y."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=None)[1]
        if len(y) < 2:
            raise ValueError(f"n_samples={len(y)}: too few rows to train and evaluate a model")
        return y

    def _frame(self, X: Any) -> pd.DataFrame:
        """``X`` as a frame: a DataFrame keeps its columns and types, an array becomes
        numbers ``x0, x1, ...``."""
        if isinstance(X, pd.DataFrame):
            return X.set_axis([str(c) for c in X.columns], axis=1).reset_index(drop=True)
        values = np.asarray(X, dtype=float)
        return pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])

    def _features(self, X: Any) -> pd.DataFrame:
        """Rows to predict, checked against what fit saw (width, names)."""
        check_is_fitted(self, "model_")
        validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=None)
        return self._frame(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.non_deterministic = self.time_budget is not None  # a budget cuts the search
        return tags


class AutoMLClassifier(ClassifierMixin, _AutoML):
    """AutoML classification (``model=auto`` by default) as a scikit-learn classifier."""

    def fit(self, X: Any, y: Any) -> AutoMLClassifier:
        y = self._check(X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y has one class ({self.classes_[0]!r}): nothing to learn")
        labels = np.asarray([str(c) for c in self.classes_], dtype=object)
        if len(set(labels)) < len(labels):
            raise ValueError(f"classes {list(self.classes_)} are not distinct as text")
        task = "binary" if len(labels) == 2 else "multiclass"
        self._train(X, labels[np.searchsorted(self.classes_, y)], task, labels[-1])
        self._order = [list(self.model_.classes).index(label) for label in labels]
        self._class_of = dict(zip(labels, self.classes_, strict=True))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, one column per class of ``classes_`` (in that order)."""
        features = self._features(X)
        return self.model_.predict_proba(features).to_numpy()[:, self._order]

    def predict(self, X: Any) -> np.ndarray:
        """Labels as the model gives them (its decision threshold, if tuned, applies)."""
        features = self._features(X)
        labels = self.model_.predict(features)
        return np.asarray([self._class_of[label] for label in labels], dtype=self.classes_.dtype)


class AutoMLRegressor(RegressorMixin, _AutoML):
    """AutoML regression (``model=auto`` by default) as a scikit-learn regressor."""

    def fit(self, X: Any, y: Any) -> AutoMLRegressor:
        y = np.asarray(self._check(X, y), dtype=float)
        self._train(X, y, "regression")
        return self

    def predict(self, X: Any) -> np.ndarray:
        features = self._features(X)
        return np.asarray(self.model_.predict(features), dtype=float)
