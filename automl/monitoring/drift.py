"""Drift of a window of data against a model's reference profile, and performance
against its test metrics. Nothing here reloads training data: the profile has it all.

Public API (the batch monitor and the server call these):

``check_drift(model_or_profile, window, config) -> dict``
    ``window``: a DataFrame with the feature columns and, optionally, the model's
    ``prediction`` / ``proba_<class>`` columns (a prediction log read as a DataFrame
    works as it is; other columns are ignored). ``config``: the ``monitoring`` node
    (``conf/common/monitoring/default.yaml``; ``load_monitoring``). Returns a JSON-ready dict:
    ``status`` (ok | warning | drift), ``signals`` (``column:<name>``, ``prediction``),
    ``drifted_columns``, ``share_drifted`` and, per column, the test, missing-rate and
    new-category signals with the histograms behind them.

``check_performance(manifest_metrics, window, task, classes, thresholds) -> dict``
    On the rows of ``window`` with a ``label``: AUC / accuracy / RMSE (the metrics named
    in ``thresholds.tolerance``) against the bundle's test metrics
    (``model.manifest["metrics"]``). ``thresholds``: the ``monitoring.performance`` node.

A server endpoint is then ``check_drift(model, log, cfg)`` plus ``check_performance(
model.manifest["metrics"], log, model.task, model.classes, cfg.performance)`` over the
window that ``monitoring.window`` selects (``select_window``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from scipy import stats

from automl.config import COMMON, MonitoringConfig, build, compose_config
from automl.errors import ConfigError
from automl.monitoring.stats import Histogram

STATUSES = ("ok", "warning", "drift")  # from best to worst
OTHER = "(other)"  # the bucket of categories the profile does not name


# --------------------------------------------------------------------------- config


def load_monitoring(name: str = "default", overrides: list[str] | None = None) -> DictConfig:
    """The monitoring config as the commands compose it: ``monitoring=<name>`` (an option
    of the ``monitoring`` group, or a YAML file merged over its ``default``) with
    ``key=value`` ``overrides`` of its keys, checked against the schema."""
    cfg = compose_config(COMMON, "shared", [f"monitoring={name}"])
    return with_overrides(cfg.monitoring, overrides or [])


def with_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A composed ``monitoring`` node, resolved, with ``key=value`` ``overrides`` (new keys
    only where the schema leaves a mapping open, e.g. ``drift.columns.age.floor``); a
    typo'd key or a bad status is a ConfigError naming it."""
    try:
        node = OmegaConf.merge(
            OmegaConf.structured(MonitoringConfig), OmegaConf.to_container(cfg, resolve=True)
        )
        node.merge_with_dotlist(list(overrides))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"monitoring: {exc}") from exc
    for key in ("drift.prediction", "drift.rejected_rows.status", "performance.status"):
        check_status(OmegaConf.select(node, key), key)
    check_status(node.alerts.min_status, "alerts.min_status")
    return node


def check_status(value: str, key: str) -> str:
    if value not in STATUSES:
        raise ConfigError(f"{key} must be one of {', '.join(STATUSES)}, got '{value}'")
    return value


def worst(*statuses: str) -> str:
    """The worst of ``statuses`` (ok < warning < drift)."""
    return max(statuses, key=STATUSES.index, default="ok")


def as_config(config: Any) -> DictConfig:
    """A monitoring node from a DictConfig or a plain mapping."""
    return config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))


class Tests:
    """The drift tests of a config, built once: by column, else by kind and sample size."""

    def __init__(self, drift: DictConfig) -> None:
        self.large_sample = int(drift.large_sample)
        catalog = drift.get("tests") or {}

        def test(pick: Any, key: str) -> Callable[[Histogram], dict]:
            if isinstance(pick, str):
                if pick not in catalog:
                    known = ", ".join(catalog) or "none"
                    raise ConfigError(f"{key}: no test named '{pick}' in drift.tests ({known})")
                pick = catalog[pick]
            return build(pick)

        self.by_kind = {
            kind: (
                test(drift[kind].small, f"drift.{kind}.small"),
                test(drift[kind].large, f"drift.{kind}.large"),
            )
            for kind in ("numeric", "categorical")
        }
        self.by_column = {
            col: test(pick, f"drift.columns.{col}") for col, pick in drift.columns.items()
        }

    def pick(self, column: str, kind: str, rows: int) -> Callable[[Histogram], dict]:
        if column in self.by_column:
            return self.by_column[column]
        small, large = self.by_kind[kind]
        return large if rows > self.large_sample else small


# --------------------------------------------------------------------------- histograms


def numeric_histogram(ref: Mapping[str, Any], values: np.ndarray) -> Histogram | None:
    """The profile's bins with the reference's shares and ``values``' counts (None when
    the reference had no values). A constant reference gets the bins below, at and above
    its value."""
    counts = np.asarray(ref.get("counts", []), dtype=float)
    if counts.sum() == 0:
        return None
    edges = np.asarray(ref["edges"], dtype=float)
    if len(edges) == 0 and ref["min"] == ref["max"]:
        edges = np.array([ref["min"], np.nextafter(ref["min"], np.inf)])
        counts = np.array([0.0, counts.sum(), 0.0])
    bucket = np.searchsorted(edges, values, side="right")
    current = np.bincount(bucket, minlength=len(edges) + 1)
    sums = np.bincount(bucket, weights=values, minlength=len(edges) + 1)
    low = min(ref["min"], values.min()) if len(values) else ref["min"]
    high = max(ref["max"], values.max()) if len(values) else ref["max"]
    return Histogram(
        kind="numeric",
        reference=counts / counts.sum(),
        current=current,
        reference_rows=int(counts.sum()),
        edges=edges,
        low=float(low),
        high=float(high),
        scale=float(ref["std"]) or abs(float(ref["mean"])) or 1.0,
        reference_means=reference_means(ref, edges),
        current_means=sums / np.maximum(current, 1),
    )


def reference_means(ref: Mapping[str, Any], edges: np.ndarray) -> np.ndarray:
    """The profile's mean per bin; profiles without them (older bundles): the bins'
    midpoints, the outer bins' between the reference's min (max) and the edge."""
    if "means" in ref and len(ref["means"]) == len(edges) + 1:
        return np.asarray(ref["means"], dtype=float)
    bounds = np.concatenate([[ref["min"]], edges, [ref["max"]]])
    return (bounds[:-1] + bounds[1:]) / 2


def categorical_histogram(ref: Mapping[str, Any], counts: pd.Series, rows: int) -> Histogram:
    """Named categories plus ``(other)`` with the reference's shares and ``counts``'
    (value counts of the window, missing values left out)."""
    labels = list(ref["frequencies"])
    shares = np.append(np.asarray(list(ref["frequencies"].values()), dtype=float), ref["other"])
    named = counts.reindex(labels, fill_value=0).to_numpy()
    current = np.append(named, counts.sum() - named.sum())
    total = shares.sum()
    return Histogram(
        kind="categorical",
        reference=shares / total if total else shares,
        current=current,
        reference_rows=max(1, round(rows * (1 - ref["missing_rate"]))),
        labels=(*labels, OTHER),
    )


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as floats, missing (and unparseable) values as NaN."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        series = pd.to_numeric(series, errors="coerce")
    return series.to_numpy(dtype=float, na_value=np.nan)


def category_counts(series: pd.Series) -> pd.Series:
    """Value counts of a column by its values as text (missing values left out)."""
    counts = series.value_counts(dropna=True, sort=True)
    counts = counts[counts > 0]
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0, sort=False).sum()


def plot_data(hist: Histogram) -> dict[str, Any]:
    """The histogram as plain lists, for the report's plots."""
    out: dict[str, Any] = {
        "reference": np.round(hist.reference, 6).tolist(),
        "current": np.round(hist.shares, 6).tolist(),
    }
    if hist.kind == "numeric":
        assert hist.edges is not None
        out |= {"edges": hist.edges.tolist(), "low": hist.low, "high": hist.high}
    else:
        out["labels"] = list(hist.labels)
    return out


# --------------------------------------------------------------------------- signals


def missing_signal(reference: float, missing: int, rows: int, rule: Any) -> dict[str, Any]:
    """The missing share's change: flagged when above ``max_change`` and unlikely by
    chance (binomial test against the reference share, p below ``p_value``)."""
    out: dict[str, Any] = {"reference": round(reference, 6), "current": None, "drifted": False}
    if rows == 0:
        return out
    rate = missing / rows
    if 0 < reference < 1:
        p = float(stats.binomtest(missing, rows, reference).pvalue)
    else:  # the reference never (or always) missed: any other rate is impossible under it
        p = 1.0 if rate == reference else 0.0
    drifted = abs(rate - reference) > rule.max_change and p < rule.p_value
    return out | {"current": round(rate, 6), "p_value": round(p, 6), "drifted": bool(drifted)}


def new_category_signal(
    ref: Mapping[str, Any], counts: pd.Series, rule: Any, examples: int
) -> dict[str, Any]:
    """The share of values the profile does not name, beyond its ``other`` share."""
    total = int(counts.sum())
    unnamed = counts[~counts.index.isin(list(ref["frequencies"]))]
    rate = float(unnamed.sum() / total) if total else 0.0
    return {
        "rate": round(rate, 6),
        "reference": round(float(ref["other"]), 6),
        "examples": [str(v) for v in unnamed.index[:examples]],
        "drifted": bool(total and rate - ref["other"] > rule.max_rate),
    }


def distribution(
    hist: Histogram | None, test: Callable[[Histogram], dict], min_values: int
) -> dict[str, Any] | None:
    """The test's verdict, or a note when there is too little to test."""
    if hist is None:
        return {"drifted": False, "note": "the reference has no values"}
    if hist.rows < min_values:
        return {"drifted": False, "note": f"{hist.rows} values, fewer than {min_values}"}
    return test(hist)


def column_drift(
    name: str, ref: Mapping[str, Any], series: pd.Series, drift: DictConfig, tests: Tests
) -> dict[str, Any]:
    """Every signal of one column: distribution test, missing share, new categories."""
    rows = len(series)
    if ref["kind"] == "numeric":
        values = numeric_values(series)
        present = values[~np.isnan(values)]
        missing = rows - len(present)
        hist = numeric_histogram(ref, present)
        new = None
    else:
        counts = category_counts(series)
        missing = rows - int(counts.sum())
        hist = categorical_histogram(ref, counts, rows=int(ref.get("rows", rows) or rows))
        new = new_category_signal(ref, counts, drift.new_categories, examples=5)
    test = tests.pick(name, ref["kind"], rows - missing)
    out: dict[str, Any] = {
        "kind": ref["kind"],
        "values": rows - missing,
        "test": distribution(hist, test, drift.min_values),
        "missing": missing_signal(ref["missing_rate"], missing, rows, drift.missing_rate),
    }
    if new is not None:
        out["new_categories"] = new
    signals = ("test", "missing", "new_categories")
    reasons = [k for k in signals if (out.get(k) or {}).get("drifted")]
    out |= {"drifted": bool(reasons), "reasons": reasons}
    if hist is not None:
        out["histogram"] = plot_data(hist)
    return out


def prediction_drift(
    pred: Mapping[str, Any] | None,
    window: pd.DataFrame,
    classes: list[str] | None,
    drift: DictConfig,
    tests: Tests,
) -> dict[str, Any] | None:
    """Drift of the predictions: the positive class's probability (binary), the label
    (multiclass) or the value (regression); None when the window has no predictions."""
    if not pred:
        return None
    positive = f"proba_{classes[1]}" if classes and len(classes) == 2 else None
    if positive and "positive_proba" in pred and positive in window.columns:
        column, ref = positive, dict(pred["positive_proba"], kind="numeric")
    elif "prediction" in window.columns:
        column, ref = "prediction", pred
    else:
        return None
    out = column_drift("prediction", ref, window[column], drift, tests)
    return {"column": column, **out}


# --------------------------------------------------------------------------- public API


def check_drift(model_or_profile: Any, window: pd.DataFrame, config: Any) -> dict[str, Any]:
    """Drift of ``window`` against the profile of a ``Model`` (or a profile dict); see the
    module docstring."""
    profile = getattr(model_or_profile, "profile", model_or_profile)
    if not profile:
        raise ConfigError(
            "the model bundle has no reference profile (profile.json): retrain it with this "
            "version of automl to monitor it"
        )
    cfg = as_config(config)
    drift = cfg.drift
    tests = Tests(drift)
    started = time.perf_counter()
    columns: dict[str, Any] = {}
    empty = pd.Series(np.nan, index=window.index, dtype=float)
    for name, ref in profile["columns"].items():
        series = window[name] if name in window.columns else empty
        columns[name] = column_drift(name, dict(ref, rows=profile["rows"]), series, drift, tests)
    classes = getattr(model_or_profile, "classes", None) or list(
        profile.get("prediction", {}).get("mean_proba", {}) or []
    )
    prediction = prediction_drift(profile.get("prediction"), window, classes, drift, tests)
    drifted = [c for c, v in columns.items() if v["drifted"]]
    share = len(drifted) / len(columns) if columns else 0.0
    status = "ok"
    if columns and share >= drift.share.drift:
        status = "drift"
    elif share > drift.share.warning:
        status = "warning"
    signals = [f"column:{c}" for c in drifted]
    if prediction is not None and prediction["drifted"]:
        status = worst(status, drift.prediction)
        signals.append("prediction")
    return {
        "status": status,
        "rows": int(len(window)),
        "reference_rows": int(profile["rows"]),
        "share_drifted": round(share, 6),
        "drifted_columns": drifted,
        "signals": signals,
        "columns": columns,
        "prediction": prediction,
        "seconds": round(time.perf_counter() - started, 3),
    }


def binary_auc(y: pd.Series, window: pd.DataFrame, classes: list[str]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(classes) != 2:
        return None
    positive = (y == classes[1]).to_numpy()
    if positive.all() or not positive.any():
        return None  # one class only: AUC is undefined
    return float(roc_auc_score(positive, window[f"proba_{classes[1]}"]))


def ovr_auc(y: pd.Series, window: pd.DataFrame, classes: list[str]) -> float | None:
    from sklearn.metrics import roc_auc_score

    if y.nunique() < len(classes):
        return None  # AUC one-vs-rest needs every class among the labels
    proba = window[[f"proba_{c}" for c in classes]].to_numpy()
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def accuracy(y: pd.Series, window: pd.DataFrame, classes: list[str]) -> float | None:
    return float((window["prediction"].astype(str).to_numpy() == y.to_numpy()).mean())


def rmse(y: pd.Series, window: pd.DataFrame, classes: None) -> float | None:
    error = window["prediction"].to_numpy(dtype=float) - y.to_numpy(dtype=float)
    return float(np.sqrt(np.mean(error**2)))


# metric (named as in the bundle's test metrics) -> (function, higher is better, tasks)
METRICS: dict[str, tuple[Callable[..., float | None], bool, tuple[str, ...]]] = {
    "auc": (binary_auc, True, ("binary",)),
    "auc_ovr": (ovr_auc, True, ("multiclass",)),
    "accuracy": (accuracy, True, ("binary", "multiclass")),
    "rmse": (rmse, False, ("regression",)),
}


def check_performance(
    manifest_metrics: Mapping[str, float],
    window: pd.DataFrame,
    task: str,
    classes: list[str] | None,
    thresholds: Any,
) -> dict[str, Any]:
    """Metrics on ``window``'s labelled rows against the test metrics; see the module
    docstring. A metric is degraded when worse than the test value by more than its
    ``tolerance`` (relative); too few labels, or one class only for AUC, is no verdict."""
    unknown = set(thresholds.tolerance) - set(METRICS)
    if unknown:
        raise ConfigError(
            f"performance.tolerance: unknown metric(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(METRICS)}"
        )
    labelled = window[window["label"].notna()] if "label" in window.columns else window.iloc[:0]
    out: dict[str, Any] = {"status": "ok", "rows": int(len(labelled)), "metrics": {}, "signals": []}
    if len(labelled) < thresholds.min_labels:
        out["note"] = f"{len(labelled)} labelled rows, fewer than {thresholds.min_labels}"
        return out
    y = labelled["label"].astype(str) if classes else labelled["label"].astype(float)
    for name, tolerance in thresholds.tolerance.items():
        function, higher, tasks = METRICS[name]
        if task not in tasks or name not in manifest_metrics:
            continue
        value = function(y, labelled, classes)
        reference = float(manifest_metrics[name])
        entry: dict[str, Any] = {"reference": round(reference, 6), "tolerance": tolerance}
        if value is None:
            out["metrics"][name] = entry | {"current": None, "degraded": False}
            continue
        worse = (reference - value) if higher else (value - reference)
        change = worse / abs(reference) if reference else worse
        degraded = change > tolerance
        out["metrics"][name] = entry | {
            "current": round(value, 6),
            "degradation": round(change, 6),
            "degraded": bool(degraded),
        }
        if degraded:
            out["status"] = thresholds.status
    out["signals"] = [f"performance:{m}" for m, v in out["metrics"].items() if v["degraded"]]
    return out


def select_window(log: pd.DataFrame, window: Any, now: float | None = None) -> pd.DataFrame:
    """The rows of a prediction log that ``monitoring.window`` selects: those of the last
    ``seconds`` (by its ``ts`` column, epoch seconds or date-times) when set, else the last
    ``rows``."""
    if window.seconds is not None:
        stamps = log["ts"]
        if not pd.api.types.is_numeric_dtype(stamps):
            stamps = pd.to_datetime(stamps, utc=True).astype("int64") / 1e9
        cutoff = (time.time() if now is None else now) - float(window.seconds)
        return log[stamps.to_numpy() >= cutoff]
    return log if window.rows is None else log.tail(int(window.rows))
