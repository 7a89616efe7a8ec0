"""PNG plots of a run: ROC and confusion matrix, or residuals; feature importance; the
model card's reliability plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PredictionErrorDisplay,
    RocCurveDisplay,
)

from automl.atomic import write_bytes  # noqa: E402
from automl.reports import figure, margins, plot_label, render  # noqa: E402

TOP_FEATURES = 20


def save_plots(
    pipeline: Any, classes: list[str] | None, X: Any, y: np.ndarray, out: Path
) -> list[Path]:
    """Write the plots of a fitted ``pipeline`` on held-out ``X``, ``y`` to ``out``.

    ``classes`` is None for regression.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if classes is None:
        predicted = pipeline.predict(X)
        display = PredictionErrorDisplay.from_predictions(
            y, predicted, kind="residual_vs_predicted"
        )
        written.append(save(display.figure_, out / "residuals.png", "Residuals on test data"))
    else:
        proba = pipeline.predict_proba(X)
        labels = pipeline.predict(X)  # a tuned decision threshold decides, where there is one
        display = ConfusionMatrixDisplay.from_predictions(
            y,
            labels,
            labels=range(len(classes)),
            display_labels=classes,
            xticks_rotation="vertical",
        )
        written.append(save(display.figure_, out / "confusion_matrix.png", "Confusion matrix"))
        if len(classes) == 2:
            display = RocCurveDisplay.from_predictions(y, proba[:, 1])
            written.append(save(display.figure_, out / "roc.png", "ROC on test data"))
    importance = feature_importance(pipeline)
    if importance:
        names, values = zip(*importance, strict=True)
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.5))
        ax.barh(names[::-1], values[::-1])
        ax.set_xlabel("importance")
        written.append(save(fig, out / "feature_importance.png", "Feature importance"))
    return written


def feature_importance(pipeline: Any) -> list[tuple[str, float]]:
    """The top features by the final estimator's importances or |coefficients|
    (an ensemble's: those of its member with the largest weight)."""
    pipeline = getattr(pipeline, "leader", pipeline)
    estimator = pipeline[-1]
    estimator = getattr(estimator, "estimator_", estimator)
    values = getattr(estimator, "feature_importances_", None)
    if values is None and hasattr(estimator, "coef_"):
        values = np.abs(np.atleast_2d(estimator.coef_)).mean(axis=0)
    if values is None:
        return []
    names = pipeline[:-1].get_feature_names_out()  # after selection: what the model saw
    order = np.argsort(values)[::-1][:TOP_FEATURES]
    return [(str(names[i]), float(values[i])) for i in order]


def calibration_png(calibration: dict[str, Any]) -> bytes:
    """The reliability plot of a model card's ``calibration`` section (its curves: mean
    predicted probability against the fraction of positives, per bin) as PNG bytes."""
    fig = figure(5.5, 5.0)
    margins(fig, left=0.8, bottom=0.7)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for curve in calibration["curves"]:
        label = plot_label(curve["class"])
        ax.plot(curve["mean_predicted"], curve["fraction_positive"], marker="o", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction of positives")
    brier = calibration.get("brier")
    ax.set_title("Calibration on test data" + ("" if brier is None else f" (Brier {brier:.4f})"))
    ax.legend(loc="upper left", fontsize="small")
    return render(fig)


def save(fig: Any, path: Path, title: str) -> Path:
    """``fig`` titled and written to ``path`` as the report kit renders figures."""
    fig.axes[0].set_title(title)
    fig.tight_layout()
    write_bytes(path, render(fig))
    plt.close(fig)
    return path
