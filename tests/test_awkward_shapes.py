"""Awkward real-world shapes on the feature side, each trained for real with
``automl.fit`` (LightGBM, a few trials) and scored on new rows with unseen values:
wide data, constant and duplicate columns, a high-cardinality categorical, free text and
date-times. Each run must beat what the data can give without the awkward column, so a
feature step that silently drops it fails the test.

Wide data comes from scikit-learn's breast cancer set (few rows, noise columns added);
the others are generated with a fixed seed and a known signal: store ids drawn from a
long-tailed (Zipf) distribution, product descriptions from a vocabulary in which a few
words sell, time stamps whose month and weekday matter.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from helpers import compose_train
from lightgbm import LGBMClassifier
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

import automl
from automl.features import ConstantDuplicateFilter, feature_steps
from automl.serving.fastpath import FastPath

RUN = [
    "model=lgbm",
    "search.n_trials=2",
    "n_jobs=1",  # LightGBM's threads slow down badly on shared cores
    "evaluation.cv_folds=3",
    "evaluation.plots=false",
    "evaluation.bootstrap=20",
    "evaluation.importance_rows=0",
    "tracking=none",
    "registry.enabled=false",
]


def fit(
    frame: pd.DataFrame, tmp_path: Path, name: str, *overrides: str, ingest=(), **keys
) -> automl.Trained:
    # new rows fall outside the training rows' ranges: no range checks in the contract
    return automl.fit(
        frame, target="y", name=name, conf_dir=tmp_path / "conf",
        overrides=[*RUN, f"paths.output_dir={tmp_path / 'out'}", *overrides],
        ingest=["contract.range_margin=null", *ingest], **keys,
    )  # fmt: skip


def auc_alone(frame: pd.DataFrame, column: str, positive: str) -> float:
    """The AUC of one numeric column as the score: what a model without the awkward
    column can reach (the other feature is monotone in the target)."""
    return roc_auc_score(frame["y"] == positive, frame[column])


def cv_auc(features: str, X: pd.DataFrame, y: np.ndarray) -> float:
    """Cross-validated AUC of a small LightGBM behind a feature set's steps."""
    cfg = compose_train([f"features={features}"])
    model = LGBMClassifier(n_estimators=60, n_jobs=1, verbose=-1, random_state=0)
    pipeline = Pipeline([*feature_steps(cfg.features), ("model", model)])
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(cross_val_score(pipeline, X, y, cv=folds, scoring="roc_auc").mean())


def finite_scores(trained: automl.Trained, rows: pd.DataFrame) -> pd.DataFrame:
    scored = trained.score(rows)
    assert len(scored) == len(rows)
    assert np.isfinite(scored.filter(like="proba_").to_numpy()).all(), scored
    return scored


def same_as_pipeline(model: automl.Model, rows: pd.DataFrame) -> None:
    """The compiled model (batches, and one record at a time as the server's fast path
    takes them) gives the pipeline's probabilities bit for bit."""
    assert model.compile() == "compiled"
    prepared = model.prepare(rows)
    want = model.pipeline.predict_proba(prepared)
    assert np.array_equal(model.compiled.frame(prepared), want)
    fast = FastPath(model)
    for i, record in enumerate(json.loads(rows.to_json(orient="records"))):
        assert np.array_equal(
            fast.predict([record]), model.pipeline.predict_proba(prepared.iloc[[i]])
        )


# --- wide data -------------------------------------------------------------------------


def test_wide_data_more_columns_than_a_quarter_of_the_rows(tmp_path):
    """160 real tumours with their 30 measurements and 100 noise columns (130 columns for
    160 rows): the model finds the signal and scores the other 409 tumours well."""
    cancer = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(0)
    noise = pd.DataFrame(
        rng.normal(size=(len(cancer.frame), 100)), columns=[f"noise_{i:03d}" for i in range(100)]
    )
    frame = pd.concat([cancer.data, noise], axis=1).assign(
        y=np.where(cancer.target == 1, "benign", "malignant")
    )
    train = frame.sample(160, random_state=0)
    assert train.shape[1] - 1 > len(train) / 4
    trained = fit(train, tmp_path, "wide")
    assert trained.metrics["auc"] > 0.9, trained.metrics
    new = frame.drop(train.index)
    scored = finite_scores(trained, new.drop(columns="y"))
    assert roc_auc_score(new["y"] == "malignant", scored["proba_malignant"]) > 0.95


# --- constant and duplicate columns ----------------------------------------------------


def shop(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two signals and a city; copies of each, constants, an all-missing column and a flag
    set on one row only (constant in every fold but one)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    city = rng.choice(["Paris", "Rome", "Oslo"], size=rows)
    score = a + b + (city == "Rome") + rng.normal(size=rows) * 0.5
    return pd.DataFrame(
        {
            "a": a, "b": b, "a_copy": a, "b_inches": b / 2.54, "const": 3.0,
            "unit": "EUR", "empty": np.nan, "flag": (np.arange(rows) == 5).astype(float),
            "city": city, "city_copy": city, "y": np.where(score > 0.3, "pos", "neg"),
        }
    )  # fmt: skip


def test_constant_and_duplicate_columns_are_dropped_in_each_fold(tmp_path):
    """Kept by ingest (as a hand-written data set would keep them), the constant and
    copied columns reach the features; features/selection=redundant drops their encoded
    columns before the model, the run and the served model stay exact."""
    frame = shop()
    trained = fit(
        frame, tmp_path, "shop", "features/selection=redundant",
        ingest=["drop_kinds=[identifier]"],
    )  # fmt: skip
    assert trained.metrics["auc"] > 0.9, trained.metrics
    pipeline = trained.model.pipeline
    names = pipeline[0].get_feature_names_out()
    kept = set(names[pipeline[1].step_.get_support()])
    assert {"a", "b", "b_inches", "city_Rome"} <= kept
    dropped = set(names) - kept
    assert {"a_copy", "const_3", "unit_EUR", "city_copy_Rome"} <= dropped
    assert pipeline[-1].estimator_.n_features_in_ == len(kept) < len(names)
    # ingest typed the constant number as a category, "3" (a served record sends text)
    rows = frame.drop(columns="y").head(40).assign(flag=1.0, const="3")
    finite_scores(trained, rows)
    same_as_pipeline(trained.model, rows)


def test_the_filter_on_a_fold_where_a_column_is_constant():
    """Fitted on the rows where ``flag`` never fires it drops it; rows where it fires are
    still taken. All-missing and one-valued columns go, one value with gaps stays."""
    X = shop()[["a", "a_copy", "const", "empty", "flag"]].to_numpy()
    X = np.column_stack([X, np.where(np.arange(len(X)) % 3 == 0, np.nan, 1.0), -0.0 * X[:, 2]])
    fold = np.arange(len(X)) != 5
    step = ConstantDuplicateFilter().fit(X[fold])
    assert step.get_support().tolist() == [True, False, False, False, False, True, False]
    assert step.transform(X).shape == (len(X), 2)
    assert ConstantDuplicateFilter().fit(X).get_support()[4]  # fires once: kept
    assert ConstantDuplicateFilter().fit(X[:, 2:4]).get_support().tolist() == [True, False]


# --- a high-cardinality categorical ----------------------------------------------------


def stores(rows: int = 3000, levels: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Sales by store id: ids long-tailed (Zipf), each store with its own effect."""
    rng = np.random.default_rng(seed)
    share = 1 / np.arange(1, levels + 1) ** 1.1
    store = rng.choice(levels, size=rows, p=share / share.sum())
    x = rng.normal(size=rows)
    score = rng.normal(size=levels)[store] * 1.5 + x + rng.normal(size=rows)
    frame = pd.DataFrame(
        {"store": [f"S{i:05d}" for i in store], "x": x, "y": np.where(score > 0, "hit", "miss")}
    )
    frame.loc[frame.index % 50 == 1, "store"] = None
    return frame


def test_high_cardinality_categorical_groups_rare_and_unseen_stores(tmp_path):
    frame = stores()
    assert frame["store"].nunique() > 500
    trained = fit(frame, tmp_path, "stores")
    assert trained.metrics["auc"] > auc_alone(frame, "x", "hit") + 0.08, trained.metrics
    names = trained.model.pipeline[0].get_feature_names_out()
    store_columns = [n for n in names if n.startswith("store_")]
    assert len(store_columns) <= 50 and "store_rare" in store_columns  # max_categories
    rare = frame["store"].value_counts().index[-1]  # seen once: grouped as rare
    new = pd.DataFrame({"store": [rare, "S99999", "never-seen", None], "x": 0.5})
    scored = finite_scores(trained, new)
    proba = scored["proba_hit"].to_numpy()
    assert proba[0] == proba[1] == proba[2]  # rare and unseen share one column
    same_as_pipeline(trained.model, new)


# --- free text -------------------------------------------------------------------------

SELLING = ["premium", "leather", "handmade", "organic", "waterproof", "vintage"]
PLAIN = ["basic", "plastic", "generic", "standard", "compact", "light", "blue", "red", "large"]
ITEMS = ["bag", "jacket", "wallet", "shoes", "lamp", "chair", "mug", "scarf", "belt"]


def products(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Short product descriptions; one of the selling words makes a sale likelier."""
    rng = np.random.default_rng(seed)
    selling = rng.random(rows) < 0.4
    notes = []
    for sells in selling:
        words = list(rng.choice(PLAIN, size=rng.integers(2, 4)))
        if sells:
            words.insert(rng.integers(0, len(words) + 1), rng.choice(SELLING))
        notes.append(
            f"{' '.join(words)} {rng.choice(ITEMS)} with {rng.choice(PLAIN)} finish, "
            f"ships in {rng.integers(1, 9)} days"
        )
    price = rng.normal(size=rows)
    score = 1.8 * selling + 0.5 * price + rng.normal(size=rows) * 0.7
    frame = pd.DataFrame(
        {"description": notes, "price": price, "y": np.where(score > 0.9, "sold", "unsold")}
    )
    frame.loc[frame.index % 40 == 5, "description"] = None
    return frame


def test_free_text_carries_its_signal_in_every_feature_set(tmp_path):
    frame = products()
    trained = fit(frame, tmp_path, "products")
    assert trained.metrics["auc"] > auc_alone(frame, "price", "sold") + 0.1, trained.metrics
    names = trained.model.pipeline[0].get_feature_names_out()
    assert "description_svd0" in names and not any(
        n.startswith("description_") and "svd" not in n for n in names
    )
    new = pd.DataFrame(
        {
            "description": [
                "premium leather wallet with red finish, ships in 3 days",
                "basic plastic wallet with red finish, ships in 3 days",
                "zyzzyva quux", "", None, "PREMIUM Leather WALLET!!! ünïcödé",
            ],
            "price": 0.0,
        }
    )  # fmt: skip
    proba = finite_scores(trained, new)["proba_sold"].to_numpy()
    assert proba[0] > proba[1] + 0.2
    # native categoricals (features=none) take the text through the same text block
    X, y = frame.drop(columns="y"), (frame["y"] == "sold").to_numpy()
    assert cv_auc("none", X, y) > cv_auc("none", X.drop(columns="description"), y) + 0.1


# --- date-times ------------------------------------------------------------------------


def visits(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Time stamps as a CSV has them (text, some missing); summer and weekdays sell."""
    rng = np.random.default_rng(seed)
    stamps = pd.Timestamp("2021-01-01") + pd.to_timedelta(
        rng.integers(0, 3 * 365 * 24 * 60, size=rows), unit="min"
    )
    x = rng.normal(size=rows)
    score = (
        1.5 * stamps.month.isin([6, 7, 8]) - 1.5 * (stamps.dayofweek >= 5)
        + 0.5 * x + rng.normal(size=rows) * 0.7
    )  # fmt: skip
    frame = pd.DataFrame(
        {"when": stamps.strftime("%Y-%m-%d %H:%M"), "x": x, "y": np.where(score > 0, "yes", "no")}
    )
    frame.loc[frame.index % 40 == 3, "when"] = None
    return frame


def test_date_strings_become_date_parts_in_every_feature_set(tmp_path):
    frame = visits()
    path = tmp_path / "visits.csv"
    frame.to_csv(path, index=False)
    trained = fit(path, tmp_path, "visits")
    assert trained.model.input_contract.columns["when"].dtype == "datetime"
    assert trained.metrics["auc"] > auc_alone(frame, "x", "yes") + 0.1, trained.metrics
    new = pd.DataFrame(
        {
            "when": ["2031-07-15 10:00", "2031-01-18 10:00", None, "1999-12-31 23:59"],
            "x": 0.0,
        }
    )
    proba = finite_scores(trained, new)["proba_yes"].to_numpy()
    assert proba[0] > proba[1] + 0.2  # a summer Tuesday against a winter Saturday
    # the other feature sets keep the dates too (none failed, minimal and
    # target_encoding dropped them); a zone-aware column is expanded in its own time
    X = frame.drop(columns="y").assign(when=pd.to_datetime(frame["when"]))
    y = (frame["y"] == "yes").to_numpy()
    without = cv_auc("minimal", X.drop(columns="when"), y)
    for features in ("none", "minimal", "target_encoding", "cyclical"):
        assert cv_auc(features, X, y) > without + 0.1, features
    paris = X["when"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    steps = Pipeline(feature_steps(compose_train([]).features)).fit(X.assign(when=paris), y)
    out = pd.DataFrame(
        steps.transform(X.assign(when=paris)), columns=steps[0].get_feature_names_out()
    )
    dated = paris.notna().to_numpy()
    np.testing.assert_array_equal(out["when_hour"][dated], paris.dt.hour[dated])
