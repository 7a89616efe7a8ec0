"""Awkward data, on real data where it exists: classes with one or two training rows,
honest failure messages, small data (repeated CV, bagged fold models), leak-free group
and time splits, a sample-weight column, duplicated rows, heavy imbalance and many
classes; and the families' portfolios of starting points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ADULT_COLUMNS, SHARED_DATA, compose_train, needs_shared_data
from sklearn.metrics import log_loss, roc_auc_score

import automl
from automl.bundle.model import Model
from automl.data.dataset import load_dataset
from automl.data.splits import RowKeys, Splitter
from automl.errors import AutomlError
from automl.search.fit import split_rows
from automl.services.training import train

QUIET = [
    "tracking=none",
    "evaluation.plots=false",
    "registry.enabled=false",
    "evaluation.bootstrap=20",
    "evaluation.importance_rows=0",
]


def run(tmp_path: Path, *overrides: str) -> tuple[dict, Path, object]:
    """Train for real; the metrics, the run folder and the composed config."""
    cfg = compose_train([*QUIET, *overrides])
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    return train(cfg, run_dir), run_dir, cfg


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "model" / "manifest.json").read_text())


# --- rare classes ----------------------------------------------------------------------

ABALONE_CLASSES = ["dataset=abalone", "dataset.task=multiclass", "evaluation.cv_folds=3"]


@needs_shared_data
@pytest.mark.parametrize(
    "model", [["model=lgbm", "model.classifier.n_estimators=40"], ["model=linear"]]
)
def test_classes_of_one_and_two_training_rows(tmp_path, model):
    """Abalone's rings as 28 classes: several have one or two rows. Every trial trains
    (the rare rows stay on the training side of each fold), the model gives every
    training class a probability above zero, and the log loss is finite."""
    metrics, run_dir, cfg = run(tmp_path, *ABALONE_CLASSES, *model, "search.n_trials=2")
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    counts = data.train[data.target].value_counts()
    assert (counts == 1).any() and (counts == 2).any()
    trials = pd.read_csv(run_dir / "leaderboard.csv")
    assert (trials["state"] == "COMPLETE").all(), trials
    model_ = Model.load(run_dir / "model")
    assert sorted(map(str, model_.classes)) == sorted(map(str, counts.index))
    proba = model_.predict_proba(data.test[data.features])
    assert (proba.to_numpy() > 0).all() and np.allclose(proba.sum(axis=1), 1)
    assert np.isfinite(metrics["log_loss"]) and metrics["accuracy"] > 0.2
    y = data.test[data.target]
    assert metrics["log_loss"] == pytest.approx(
        log_loss(y, proba.to_numpy(), labels=list(proba.columns)), rel=1e-6
    )


def test_rare_classes_never_validated_but_always_trained():
    """Classes with fewer rows than folds stay in every training fold (never validated);
    a holdout keeps a one-row class on the training side."""
    y = np.array([0] * 40 + [1] * 40 + [2] * 2 + [3])
    splitter = Splitter("random", True, 0)
    for train_rows, valid_rows in splitter.folds(y, RowKeys(), 5, True, repeats=2):
        assert {2, 3} <= set(y[train_rows]) and not {2, 3} & set(y[valid_rows])
    train_rows, held = splitter.holdout(y, RowKeys(), 0.2, True)
    assert 3 in y[train_rows] and 3 not in y[held]


# --- honest failures --------------------------------------------------------------------


def test_failed_trials_name_their_error_not_the_time_budget(tmp_path):
    """Every trial fails for one reason: the error says which, and what to do."""
    with pytest.raises(AutomlError) as caught:
        run(
            tmp_path,
            "model=lgbm",
            "+model.classifier.boosting_type=no_such_boosting",
            "search.n_trials=2",
            "search.time_budget=30",
        )
    message = str(caught.value)
    assert "failed and none finished" in message and "no_such_boosting" in message
    assert "time budget" not in message and "Fix:" in message
    assert not (tmp_path / "run0" / "model").exists()


# --- small data --------------------------------------------------------------------------


@needs_shared_data
def test_small_data_is_cross_validated_again_and_bagged(tmp_path):
    """horse_colic (about 240 training rows) under model=auto: repeated CV, and the chosen
    members' fold models are the final model (no refit); it saves, loads, compiles and
    predicts as it was evaluated."""
    metrics, run_dir, cfg = run(
        tmp_path,
        "dataset=horse_colic",
        "model=auto",
        "model.families=[linear,lgbm]",
        "search.time_budget=25",
    )
    params = manifest(run_dir)["best_params"]
    assert params["bagged"] is True and params["cv_repeats"] >= 2, params
    model = Model.load(run_dir / "model")
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    X = data.test[data.features]
    proba = model.predict_proba(X)
    y = (data.test[data.target].astype(str) == model.classes[-1]).to_numpy()
    assert roc_auc_score(y, proba.iloc[:, -1]) == pytest.approx(metrics["auc"], abs=1e-12)
    assert metrics["auc"] > 0.8
    assert model.compile() == "compiled"
    np.testing.assert_allclose(model.compiled.frame(model.prepare(X)), proba.to_numpy())


# --- group and time splits, weights, duplicates --------------------------------------


def patients(n: int = 150, visits: int = 6, seed: int = 0) -> pd.DataFrame:
    """Repeated visits: each patient's outcome comes mostly from who they are (a height
    that names them), little from the visit's reading."""
    rng = np.random.default_rng(seed)
    who = np.repeat(np.arange(n), visits)
    height = rng.normal(170, 10, n)[who]
    frailty = rng.normal(size=n)[who]
    reading = rng.normal(size=n * visits)
    score = 2 * frailty + 0.3 * reading + rng.normal(size=n * visits) * 0.3
    return pd.DataFrame(
        {
            "patient": [f"p{i:03d}" for i in who],
            "height": height.round(3),
            "reading": reading,
            "sick": np.where(score > 0, "yes", "no"),
        }
    )


def test_group_split_keeps_each_group_on_one_side():
    groups = np.repeat(np.arange(30), 4)
    y = np.tile([0, 1], 60)
    splitter = Splitter("group", True, 0)
    train_rows, held = splitter.holdout(y, RowKeys(groups=groups), 0.2, True)
    assert not set(groups[train_rows]) & set(groups[held]) and len(held)
    for train_rows, valid_rows in splitter.folds(y, RowKeys(groups=groups), 5, True):
        assert not set(groups[train_rows]) & set(groups[valid_rows])


def test_group_split_gives_an_honest_score_where_random_rows_leak(tmp_path):
    """A random split puts a patient's visits on both sides, and the model recognises the
    patient by height: its scores are inflated. Split by patient, they are not."""
    frame = patients()
    base = [
        "model=lgbm", "search.n_trials=2", "evaluation.cv_folds=3", "n_jobs=1",
        *QUIET[:2], f"paths.output_dir={tmp_path / 'out'}",
    ]  # fmt: skip
    leaky = automl.fit(
        frame.drop(columns="patient"), target="sick", name="visits_rows",
        conf_dir=tmp_path / "conf", overrides=base,
    )  # fmt: skip
    grouped = automl.fit(
        frame, target="sick", name="visits_patients", conf_dir=tmp_path / "conf",
        overrides=[*base, "evaluation.split=group", "evaluation.group_column=patient"],
    )  # fmt: skip
    assert "patient" not in grouped.model.input_contract.columns  # a key, not an input
    # the random split's test rows are visits of patients it trained on: a score that new
    # patients will not see; split by patient, CV and test both say so
    assert leaky.metrics["auc"] > 0.85
    assert grouped.metrics["auc"] < leaky.metrics["auc"] - 0.15
    assert grouped.metrics["cv_roc_auc"] < leaky.metrics["cv_roc_auc"] - 0.1


def sales(days: int = 500, seed: int = 0) -> pd.DataFrame:
    """Daily sales whose level drifts upward: the future is not like the past."""
    rng = np.random.default_rng(seed)
    when = pd.date_range("2023-01-01", periods=days, freq="D")
    promo = rng.random(days) < 0.3
    amount = 100 + 0.2 * np.arange(days) + 30 * promo + rng.normal(0, 5, days)
    return pd.DataFrame({"day": when, "promo": promo.astype(int), "amount": amount})


def test_time_split_trains_on_the_past(tmp_path):
    times = np.repeat(np.arange(50), 2)
    splitter = Splitter("time", True, 0)
    train_rows, held = splitter.holdout(np.zeros(100), RowKeys(times=times), 0.2, False)
    assert times[train_rows].max() < times[held].min()
    for train_rows, valid_rows in splitter.folds(np.zeros(100), RowKeys(times=times), 4, False):
        assert times[train_rows].max() < times[valid_rows].min()
    trained = automl.fit(
        sales(), target="amount", name="sales", conf_dir=tmp_path / "conf",
        overrides=[
            "model=lgbm", "search.n_trials=2", "evaluation.cv_folds=3", "n_jobs=1",
            "search.bagging=true", *QUIET[:2], f"paths.output_dir={tmp_path / 'out'}",
            "evaluation.split=time", "evaluation.time_column=day",
        ],
    )  # fmt: skip
    params = json.loads((trained.run_dir / "model" / "manifest.json").read_text())
    assert not params["best_params"].get("bagged")  # fold models never see the future
    assert np.isfinite(trained.metrics["rmse"])


@needs_shared_data
def test_weight_column_weights_fitting_and_scores(tmp_path):
    """adult's fnlwgt (how many people a row stands for) as weights: not a model input,
    and the test AUC is the weighted one."""
    overrides = [
        "dataset=adult", "model=lgbm", "model.classifier.n_estimators=40", "search.n_trials=1",
        "evaluation.cv_folds=2", "evaluation.weight_column=fnlwgt",
    ]  # fmt: skip
    metrics, run_dir, cfg = run(tmp_path, *overrides)
    model = Model.load(run_dir / "model")
    assert "fnlwgt" not in model.input_contract.columns
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    proba = model.predict_proba(data.test[data.features]).iloc[:, -1]
    y = (data.test[data.target].astype(str) == ">50K").to_numpy()
    weighted = roc_auc_score(y, proba, sample_weight=data.test["fnlwgt"])
    assert metrics["auc"] == pytest.approx(weighted, abs=1e-12)
    assert metrics["auc"] != pytest.approx(roc_auc_score(y, proba), abs=1e-6)


@pytest.mark.parametrize("weight", ["-1", "nan"])
def test_bad_weights_are_refused_with_the_row(tmp_path, weight):
    frame = patients(20, 3).drop(columns="patient")
    frame["w"] = np.linspace(0.5, 2.0, len(frame))
    frame.loc[7, "w"] = float(weight)
    with pytest.raises(AutomlError, match=r"'w'.*row 7"):
        automl.fit(
            frame, target="sick", name="weighted", conf_dir=tmp_path / "conf",
            overrides=["model=linear", "search.n_trials=1", *QUIET[:2],
                       f"paths.output_dir={tmp_path / 'out'}", "evaluation.weight_column=w"],
        )  # fmt: skip


@needs_shared_data
def test_duplicated_rows_stay_on_one_side(tmp_path):
    """winequality_red has 240 exact duplicate rows: none is both trained and tested."""
    cfg = compose_train(["dataset=winequality_red"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    columns = list(data.train.columns)
    assert data.train.duplicated(keep=False).any()
    both = data.train.merge(data.test, on=columns, how="inner")
    assert both.empty
    apart = compose_train(["dataset=winequality_red", "evaluation.keep_duplicates_together=false"])
    loose = load_dataset(apart.dataset, apart.evaluation, apart.seed)
    assert not loose.train.merge(loose.test, on=columns, how="inner").empty


# --- imbalance and many classes ------------------------------------------------------


@needs_shared_data
def test_heavy_imbalance_tunes_the_threshold(tmp_path):
    """adult's training file thinned to 1.5 % positives: AUC and log loss stay sensible and
    the decision threshold is tuned (by rule) below one half."""
    frame = pd.read_csv(
        SHARED_DATA / "adult-train.csv", header=None, names=ADULT_COLUMNS, skipinitialspace=True
    )
    positive = frame["income"].str.strip() == ">50K"
    keep = frame[~positive].sample(8000, random_state=0)
    rare = frame[positive].sample(round(8000 * 0.015 / 0.985), random_state=0)
    thin = pd.concat([keep, rare]).sample(frac=1, random_state=0)
    trained = automl.fit(
        thin, target="income", name="rare_income", conf_dir=tmp_path / "conf",
        overrides=["model=lgbm", "model.classifier.n_estimators=60", "search.n_trials=2",
                   "evaluation.cv_folds=3", "n_jobs=1", *QUIET[:2],
                   f"paths.output_dir={tmp_path / 'out'}"],
    )  # fmt: skip
    assert trained.metrics["auc"] > 0.8 and trained.metrics["log_loss"] < 0.1
    threshold = trained.model.manifest.get("decision_threshold")
    assert threshold is not None and threshold < 0.5


def test_many_classes(tmp_path):
    """25 classes from 8 measurements: every class gets a probability, well above chance."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(25, 8)) * 2
    label = rng.integers(0, 25, 2500)
    X = centres[label] + rng.normal(size=(2500, 8))
    frame = pd.DataFrame(X, columns=[f"m{i}" for i in range(8)]).assign(
        kind=[f"k{i:02d}" for i in label]
    )
    trained = automl.fit(
        frame, target="kind", name="kinds", conf_dir=tmp_path / "conf",
        overrides=["model=linear", "search.n_trials=2", "evaluation.cv_folds=3", *QUIET[:2],
                   f"paths.output_dir={tmp_path / 'out'}"],
    )  # fmt: skip
    assert len(trained.model.classes) == 25
    assert trained.metrics["accuracy"] > 0.5 and np.isfinite(trained.metrics["log_loss"])


def test_many_classes_under_a_budget_are_searched_on_a_holdout():
    """25 classes cost a booster 25 trees a round: data that 5-fold CV fits for two
    classes gets one holdout split under a 30 s budget (every trial can finish)."""
    cfg = compose_train(["model=auto", "search.time_budget=30"])
    X = pd.DataFrame(np.zeros((2400, 30)))
    many, two = np.arange(2400) % 25, np.arange(2400) % 2
    assert len(split_rows(cfg, Splitter(), RowKeys(), X, two, "binary")) == 5
    assert len(split_rows(cfg, Splitter(), RowKeys(), X, many, "multiclass")) == 1


# --- portfolios ----------------------------------------------------------------------


def test_a_family_starts_from_its_defaults_then_its_portfolio(tmp_path):
    cfg = compose_train(["model=lgbm"])
    portfolio = list(cfg.model.portfolio)
    metrics, run_dir, _ = run(
        tmp_path, "model=lgbm", "model.classifier.n_estimators=30", "search.n_trials=3",
        "evaluation.cv_folds=2",
    )  # fmt: skip
    trials = pd.read_csv(run_dir / "leaderboard.csv").sort_values("number")
    for row, entry in zip(trials.iloc[1:3].to_dict("records"), portfolio[:2], strict=True):
        for key, value in entry.items():
            assert row[f"params_lgbm.{key}"] == pytest.approx(value), key


# --- heavy-tailed regression targets ------------------------------------------------


def spending(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Amounts spent: log-normal, the log linear in the inputs (a few huge spenders)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    amount = np.exp(1.5 * X[:, 0] + X[:, 1] - 0.5 * X[:, 2] + rng.normal(size=rows) * 0.3)
    return pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(amount=amount)


def test_a_log_target_family_competes_on_cv_and_predicts_on_the_original_scale(tmp_path):
    frame = spending()
    base = [
        "search.time_budget=null", "evaluation.cv_folds=3", "n_jobs=1", *QUIET[:2],
        f"paths.output_dir={tmp_path / 'out'}",
    ]  # fmt: skip
    auto = automl.fit(
        frame, target="amount", name="spend", conf_dir=tmp_path / "conf",
        overrides=[*base, "model=auto", "model.families=[lgbm,lgbm_log]", "search.n_trials=4",
                   "model.candidates.lgbm.regressor.n_estimators=200",
                   "model.candidates.lgbm_log.regressor.n_estimators=200"],
    )  # fmt: skip
    families = auto.families().set_index("family")
    assert {"lgbm", "lgbm_log"} <= set(families.index)
    # the log target fits the multiplicative signal better: CV (RMSE) says so
    assert families.loc["lgbm_log", "best_cv"] > families.loc["lgbm", "best_cv"]
    new = frame.drop(columns="amount").head(50)
    predicted = auto.predict(new)
    assert np.isfinite(predicted).all() and (predicted > 0).all()
    assert np.corrcoef(np.log(predicted), np.log(frame["amount"].head(50)))[0, 1] > 0.9
    # classification leaves the log family out
    labelled = frame.assign(amount=np.where(frame["amount"] > 1, "big", "small"))
    classified = automl.fit(
        labelled, target="amount", name="spend_class", conf_dir=tmp_path / "conf",
        overrides=[*base, "model=auto", "model.families=[linear,lgbm_log]", "search.n_trials=2"],
    )  # fmt: skip
    assert list(classified.families()["family"]) == ["linear"]
