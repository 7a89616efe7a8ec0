"""Feature steps (automl.features.steps) on real data: what each computes, its names,
no NaN/inf out, unseen categories, determinism, clone and refit, and cross-validation
inside a Pipeline. Numeric steps on scikit-learn's shipped data sets; categorical and
date-time steps on adult (../shared/data), with a date built from the row index."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from helpers import ADULT_COLUMNS, SHARED_DATA, adult_test_rows, needs_shared_data
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_selection import (
    SelectKBest,
    chi2,
    f_classif,
    f_regression,
    mutual_info_classif,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl.features.steps import (
    CappedSVD,
    CorrelationFilter,
    CyclicalDateTime,
    FrequencyEncoder,
    HashingEncoder,
    ModelImportanceSelector,
    OneHot,
    PermutationSelector,
    TopKInteractions,
    UnivariateSelector,
)

CATEGORICAL = [
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
NUMERIC_ADULT = ["age", "education-num", "hours-per-week"]
LOADERS = {"binary": load_breast_cancer, "multiclass": load_wine, "regression": load_diabetes}


# --- data ------------------------------------------------------------------------------


def with_dates(frame: pd.DataFrame, start: str) -> pd.Series:
    """A real-looking date-time column from the row index (every 613 minutes, so all
    months, weekdays and hours occur), missing on every 50th row."""
    stamps = pd.Timestamp(start) + pd.to_timedelta(frame.index.to_numpy() * 613, unit="min")
    return pd.Series(stamps, index=frame.index).where(frame.index % 50 != 7)


@cache
def adult() -> tuple[pd.DataFrame, np.ndarray]:
    """3,000 adult training rows ('?' as missing) with a date column; y: income > 50K."""
    frame = pd.read_csv(
        SHARED_DATA / "adult-train.csv",
        header=None,
        names=ADULT_COLUMNS,
        skipinitialspace=True,
        na_values="?",
        nrows=3000,
    )
    frame["seen"] = with_dates(frame, "2019-01-01")
    y = (frame.pop("income") == ">50K").astype(int).to_numpy()
    return frame, y


@cache
def adult_new() -> pd.DataFrame:
    """500 rows of the official test file, with categories training never saw."""
    frame = adult_test_rows().head(500).replace("?", np.nan)
    frame.loc[0, "workclass"] = "Martian"
    frame.loc[1, "native-country"] = "Atlantis"
    frame.loc[2, "occupation"] = np.nan
    frame["seen"] = with_dates(frame, "2021-06-01")
    return frame


@cache
def shipped(task: str) -> tuple[pd.DataFrame, pd.Series]:
    X, y = LOADERS[task](return_X_y=True, as_frame=True)
    return X, y


def data(kind: str) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """(rows to fit, their target, new rows) for a case kind."""
    if kind in ("categorical", "datetime"):
        columns = CATEGORICAL if kind == "categorical" else ["seen"]
        frame, y = adult()
        return frame[columns], y, adult_new()[columns]
    X, y = shipped(kind)
    cut = int(len(X) * 0.7)
    return X.iloc[:cut], y.iloc[:cut].to_numpy(), X.iloc[cut:]


# (id, step, kind of data)
CASES: list[tuple[str, Callable, str]] = [
    ("frequency", lambda: FrequencyEncoder(), "categorical"),
    ("frequency_counts", lambda: FrequencyEncoder(normalize=False, min_count=20), "categorical"),
    ("hashing", lambda: HashingEncoder(n_features=32), "categorical"),
    ("onehot", lambda: OneHot(min_frequency=0.002, max_categories=50), "categorical"),
    ("cyclical", lambda: CyclicalDateTime(parts=(*CyclicalDateTime().parts, "minute")), "datetime"),
    ("products", lambda: TopKInteractions(k=4), "binary"),
    (
        "ratios_mi",
        lambda: TopKInteractions(k=4, kind="ratio", criterion="mutual_info"),
        "regression",
    ),
    ("univariate_mi", lambda: UnivariateSelector(k=8), "binary"),
    ("univariate_anova", lambda: UnivariateSelector(criterion="anova", k=0.5), "regression"),
    ("univariate_chi2", lambda: UnivariateSelector(criterion="chi2", k=5), "multiclass"),
    ("model_importance", lambda: ModelImportanceSelector(), "binary"),
    ("model_importance_max", lambda: ModelImportanceSelector(max_features=4), "regression"),
    ("permutation", lambda: PermutationSelector(keep=5), "multiclass"),
    ("correlation", lambda: CorrelationFilter(threshold=0.9), "binary"),
]
PARAMS = [
    pytest.param(
        make, kind, id=name, marks=needs_shared_data if kind in ("categorical", "datetime") else ()
    )
    for name, make, kind in CASES
]


# --- every step ------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "kind"), PARAMS)
def test_output_names_and_values(make, kind):
    X, y, new = data(kind)
    step = make().fit(X, y)
    out = step.transform(new)
    names = step.get_feature_names_out()
    assert out.shape == (len(new), len(names)) and out.shape[1] > 0
    assert np.issubdtype(out.dtype, np.floating)
    assert np.isfinite(out).all()  # unseen categories, NaT and missing values included
    assert len(set(names)) == len(names) and all(isinstance(n, str) for n in names)
    assert list(step.feature_names_in_) == list(X.columns) and step.n_features_in_ == X.shape[1]
    if not isinstance(step, HashingEncoder):  # names tell which input they come from
        assert all(any(col in name for col in X.columns) for name in names)


@pytest.mark.parametrize(("make", "kind"), PARAMS)
def test_deterministic_clone_and_refit(make, kind):
    X, y, new = data(kind)
    first = make().fit(X, y)
    again = clone(first)
    assert not hasattr(again, "n_features_in_")  # clone: parameters only
    np.testing.assert_array_equal(first.transform(new), again.fit(X, y).transform(new))
    np.testing.assert_array_equal(first.transform(new), make().fit(X, y).transform(new))
    assert list(again.get_feature_names_out()) == list(first.get_feature_names_out())


@pytest.mark.parametrize(("make", "kind"), PARAMS)
def test_arrays_give_the_same_output_with_generic_names(make, kind):
    X, y, new = data(kind)
    if kind == "categorical" and isinstance(make(), HashingEncoder):
        # tokens are "<col>=<value>": an array's columns are named by position
        X, new = X.set_axis(range(X.shape[1]), axis=1), new.set_axis(range(X.shape[1]), axis=1)
    from_frame = make().fit(X, y)
    from_array = make().fit(X.to_numpy(), y)
    assert not hasattr(from_array, "feature_names_in_")
    np.testing.assert_array_equal(from_frame.transform(new), from_array.transform(new.to_numpy()))
    generic = from_array.get_feature_names_out()
    assert len(generic) == len(from_frame.get_feature_names_out())
    if not isinstance(from_array, HashingEncoder):
        assert all("x" in name for name in generic)
        # names given by the step before (as ColumnTransformer does) are used
        named = from_array.get_feature_names_out(list(X.columns))
        assert list(named) == list(from_frame.get_feature_names_out())


@pytest.mark.parametrize(("make", "kind"), PARAMS)
def test_pandas_output(make, kind):
    X, y, new = data(kind)
    step = make().set_output(transform="pandas").fit(X, y)
    out = step.transform(new)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(step.get_feature_names_out())


def pipeline(step, kind: str) -> Pipeline:
    if kind == "categorical":
        impute = SimpleImputer(strategy="constant", fill_value="__missing__")
        encode = make_pipeline(impute, step, StandardScaler())
        blocks = [("cat", encode, CATEGORICAL), ("num", StandardScaler(), NUMERIC_ADULT)]
    elif kind == "datetime":
        blocks = [("date", step, ["seen"]), ("num", StandardScaler(), NUMERIC_ADULT)]
    else:
        features = make_pipeline(StandardScaler(), step)
        model = Ridge() if kind == "regression" else LogisticRegression(max_iter=5000)
        return Pipeline([("features", features), ("model", model)])
    return Pipeline(
        [("features", ColumnTransformer(blocks)), ("model", LogisticRegression(max_iter=5000))]
    )


# mean 3-fold score well above a constant guess (accuracy; R² for diabetes)
GOOD_SCORE = {"categorical": 0.8, "datetime": 0.75, "binary": 0.9, "multiclass": 0.85}


@pytest.mark.parametrize(("make", "kind"), PARAMS)
def test_fitted_inside_cross_validation_folds(make, kind):
    if kind in ("categorical", "datetime"):
        frame, y = adult()
        X = frame[[*CATEGORICAL, *NUMERIC_ADULT, "seen"]]
    else:
        X, y = shipped(kind)
    model = pipeline(make(), kind)
    scores = cross_val_score(model, X, y, cv=3)
    assert np.isfinite(scores).all()
    assert scores.mean() > GOOD_SCORE.get(kind, 0.3), scores
    features = model.fit(X, y)[:-1]
    names = features.get_feature_names_out()  # through ColumnTransformer / Pipeline
    assert len(names) == features.transform(X).shape[1]


# --- categorical and date-time ---------------------------------------------------------


@needs_shared_data
def test_frequency_encoder_gives_training_shares_and_zero_for_unseen():
    X, _ = adult()
    X, new = X[CATEGORICAL], adult_new()[CATEGORICAL]
    step = FrequencyEncoder().fit(X)
    assert list(step.get_feature_names_out()) == [f"{c}_freq" for c in CATEGORICAL]
    out = pd.DataFrame(step.transform(new), columns=CATEGORICAL, index=new.index)
    shares = X["sex"].value_counts(normalize=True)
    assert np.allclose(out["sex"], new["sex"].map(shares))
    assert out.loc[0, "workclass"] == 0 and out.loc[1, "native-country"] == 0  # unseen
    assert out.loc[2, "occupation"] == pytest.approx(X["occupation"].isna().mean())  # missing
    train = pd.DataFrame(step.transform(X), columns=CATEGORICAL)
    for col in CATEGORICAL:  # one share per category; they add up to 1
        per_category = train[col].groupby(X[col].fillna("__missing__").to_numpy()).first()
        assert per_category.sum() == pytest.approx(1.0)


@needs_shared_data
def test_frequency_encoder_counts_and_rare_categories():
    X, _ = adult()
    counts = X["native-country"].value_counts()
    step = FrequencyEncoder(normalize=False, min_count=50).fit(X[["native-country"]])
    out = step.transform(X[["native-country"]])[:, 0]
    common = (X["native-country"] == "United-States").to_numpy()
    assert (out[common] == counts["United-States"]).all()
    rare = X["native-country"].isin(counts[counts < 50].index).to_numpy()
    assert rare.any() and (out[rare] == 0).all()


@needs_shared_data
@needs_shared_data
@pytest.mark.parametrize(
    ("min_frequency", "max_categories"), [(0.002, 50), (0.05, None), (None, 3), (10, 5), (None, 1)]
)
def test_onehot_is_sklearns_onehot_after_a_constant_imputer(min_frequency, max_categories):
    X, _, new = data("categorical")
    ours = OneHot(min_frequency=min_frequency, max_categories=max_categories).fit(X)
    theirs = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="__missing__"),
        OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            min_frequency=min_frequency,
            max_categories=max_categories,
            sparse_output=False,
        ),
    ).fit(X)
    for rows in (X, new):  # new: unseen categories and a missing value
        assert np.array_equal(ours.transform(rows), theirs.transform(rows))
    names = [n.replace("infrequent_sklearn", "rare") for n in theirs.get_feature_names_out()]
    assert list(ours.get_feature_names_out()) == names


def test_onehot_unseen_categories_go_to_the_rare_column_or_nowhere_or_are_refused():
    train = pd.DataFrame({"colour": ["red"] * 6 + ["blue"] * 3 + ["green", None]})
    new = pd.DataFrame({"colour": ["blue", "mauve", None]})
    grouped = OneHot(min_frequency=2).fit(train)
    assert list(grouped.get_feature_names_out()) == ["colour_blue", "colour_red", "colour_rare"]
    # green and missing were seen once each: rare; mauve unseen: rare; missing: rare
    assert grouped.transform(new).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    ignored = OneHot(min_frequency=2, handle_unknown="ignore").fit(train)
    assert ignored.transform(new).tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
    every = OneHot().fit(train)  # nothing rare: no rare column, unseen gives zeros
    assert list(every.get_feature_names_out()) == [
        "colour___missing__",
        "colour_blue",
        "colour_green",
        "colour_red",
    ]
    assert every.transform(new).tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]
    with pytest.raises(ValueError, match="column 'colour' has an unknown category 'mauve'"):
        OneHot(handle_unknown="error").fit(train).transform(new)
    with pytest.raises(ValueError, match="handle_unknown must be"):
        OneHot(handle_unknown="infrequent_if_exist").fit(train)


def test_hashing_encoder_is_feature_hasher_over_column_value_tokens():
    X, _ = adult()
    new = adult_new()[CATEGORICAL]
    step = HashingEncoder(n_features=16).fit(X[CATEGORICAL])
    out = step.transform(new)
    assert out.shape == (len(new), 16)
    assert list(step.get_feature_names_out()) == [f"hash_{i}" for i in range(16)]
    assert (out.sum(axis=1) == len(CATEGORICAL)).all()  # one token a column, unseen included
    tokens = [
        [f"{c}={'__missing__' if pd.isna(v) else v}" for c, v in row.items()]
        for _, row in new.iterrows()
    ]
    hasher = FeatureHasher(n_features=16, input_type="string", alternate_sign=False)
    np.testing.assert_array_equal(out, hasher.transform(tokens).toarray())
    signed = HashingEncoder(n_features=16, alternate_sign=True).fit(X[CATEGORICAL])
    assert (signed.transform(new) < 0).any()


@needs_shared_data
def test_cyclical_datetime_puts_parts_on_the_unit_circle():
    X, _ = adult()
    new = adult_new()[["seen"]]
    step = CyclicalDateTime().fit(X[["seen"]])
    assert list(step.get_feature_names_out()) == [
        f"seen_{p}_{f}"
        for p in ("month", "day_of_week", "hour", "day_of_year")
        for f in ("sin", "cos")
    ]
    out = step.transform(new)
    missing = new["seen"].isna().to_numpy()
    assert missing.any() and (out[missing] == 0).all()  # NaT -> 0 for sin and cos
    radius = out[~missing, 0::2] ** 2 + out[~missing, 1::2] ** 2
    assert np.allclose(radius, 1.0)


def test_cyclical_datetime_known_values():
    step = CyclicalDateTime(parts=("hour", "day_of_year")).fit(pd.DataFrame({"d": ["2024-03-01"]}))
    when = ["2024-12-31 06:00", "2025-01-01 00:00", "2025-07-01 12:00", "not a date", None]
    out = step.transform(pd.DataFrame({"d": when}))
    assert out[0, 0] == pytest.approx(1.0) and out[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.norm(out[0, 2:] - out[1, 2:]) < 0.05  # New Year's Eve next to New Year
    assert np.linalg.norm(out[2, 2:] - out[1, 2:]) > 1.9  # July opposite
    assert (out[3:] == 0).all()
    with pytest.raises(ValueError, match="second"):
        CyclicalDateTime(parts=("second",)).fit(pd.DataFrame({"d": when}))


# --- interactions ----------------------------------------------------------------------


def test_top_k_products_are_the_pairs_of_the_best_scored_columns():
    X, y = shipped("binary")
    step = TopKInteractions(k=4).fit(X, y)
    top = list(SelectKBest(f_classif, k=4).fit(X, y).get_feature_names_out())
    out = step.transform(X)
    names = list(step.get_feature_names_out())
    pairs = list(combinations(top, 2))
    # the original columns, then the k(k-1)/2 products: k + k(k-1)/2 from the top k
    assert out.shape[1] == X.shape[1] + 4 * 3 // 2 == len(names)
    np.testing.assert_array_equal(out[:, : X.shape[1]], X.to_numpy())
    assert names[X.shape[1] :] == [f"{a}*{b}" for a, b in pairs]
    for i, (a, b) in enumerate(pairs):
        np.testing.assert_allclose(out[:, X.shape[1] + i], X[a] * X[b])
    diabetes, target = shipped("regression")
    step = TopKInteractions(k=3).fit(diabetes, target)
    expected = SelectKBest(f_regression, k=3).fit(diabetes, target).get_feature_names_out()
    assert [n for n in step.get_feature_names_out() if "*" not in n] == list(diabetes.columns)
    assert list(step.top_) == [list(diabetes.columns).index(c) for c in expected]


def test_top_k_ratios_have_a_safe_denominator():
    X, y = shipped("binary")
    pair = X[["mean radius", "mean concave points"]]
    zero = (pair["mean concave points"] == 0).to_numpy()
    assert zero.any()  # real zeros in the denominator
    step = TopKInteractions(k=2, kind="ratio").fit(pair, y)
    assert list(step.get_feature_names_out())[-1] == "mean radius/mean concave points"
    ratio = step.transform(pair)[:, -1]
    assert np.isfinite(ratio).all() and (ratio[zero] == 0).all()
    np.testing.assert_allclose(
        ratio[~zero], (pair["mean radius"] / pair["mean concave points"])[~zero]
    )


@pytest.mark.parametrize("kind", ["product", "ratio"])
def test_top_k_keeps_missing_values_missing_and_never_emits_inf(kind):
    X, y = shipped("binary")
    holes = X.copy()
    holes.iloc[::7, [0, 2, 3, 7, 20, 22, 23, 27]] = np.nan  # the best-scored columns too
    step = TopKInteractions(k=5, kind=kind).fit(holes, y)
    out = step.transform(holes)
    assert not np.isinf(out).any()
    assert np.isnan(out[::7]).any() and np.isfinite(np.delete(out, np.s_[::7], axis=0)).all()


# --- selection -------------------------------------------------------------------------


def test_univariate_selector_keeps_k_or_a_share():
    X, y = shipped("binary")
    step = UnivariateSelector(k=8).fit(X, y)
    mi = SelectKBest(partial(mutual_info_classif, random_state=0), k=8).fit(X, y)
    assert list(step.get_feature_names_out()) == list(mi.get_feature_names_out())
    assert UnivariateSelector(k=0.25).fit(X, y).transform(X).shape[1] == 8  # 7.5 -> 8
    assert UnivariateSelector(k=1000).fit(X, y).transform(X).shape[1] == X.shape[1]
    anova = UnivariateSelector(criterion="anova", k=5).fit(X, y)
    expected = SelectKBest(f_classif, k=5).fit(X, y).get_feature_names_out()
    assert list(anova.get_feature_names_out()) == list(expected)
    diabetes, target = shipped("regression")
    kept = UnivariateSelector(k=3).fit(diabetes, target).get_feature_names_out()
    assert {"bmi", "s5"} <= set(kept)
    with pytest.raises(ValueError, match="k must be"):
        UnivariateSelector(k=0).fit(X, y)


def test_univariate_chi2_scores_a_scaled_copy_and_passes_the_originals():
    X, y = shipped("multiclass")
    scaled = pd.DataFrame(StandardScaler().fit_transform(X), columns=X.columns)
    with pytest.raises(ValueError):
        chi2(scaled, y)  # negative input: chi2 alone refuses it
    step = UnivariateSelector(criterion="chi2", k=4).fit(scaled, y)
    kept = list(step.get_feature_names_out())
    assert len(kept) == 4
    np.testing.assert_array_equal(step.transform(scaled), scaled[kept].to_numpy())


def test_univariate_chi2_on_a_regression_target_is_a_clear_error():
    X, y = shipped("regression")
    with pytest.raises(ValueError, match=r"criterion='chi2'.*classification.*regression"):
        UnivariateSelector(criterion="chi2").fit(X, y)


def test_model_importance_selector():
    X, y = shipped("binary")
    step = ModelImportanceSelector().fit(X, y)
    assert isinstance(step.estimator_, LGBMClassifier)
    importances = step.estimator_.feature_importances_
    kept = step.get_support()
    assert X.shape[1] / 2 <= kept.sum() < X.shape[1]  # at or above the median
    assert importances[kept].min() >= np.median(importances) > importances[~kept].max()
    assert ModelImportanceSelector(max_features=5).fit(X, y).transform(X).shape[1] <= 5
    linear = ModelImportanceSelector(estimator=LogisticRegression(max_iter=5000), threshold="mean")
    scaled = pd.DataFrame(StandardScaler().fit_transform(X), columns=X.columns)
    assert isinstance(linear.fit(scaled, y).estimator_, LogisticRegression)
    diabetes, target = shipped("regression")
    assert isinstance(ModelImportanceSelector().fit(diabetes, target).estimator_, LGBMRegressor)


@pytest.mark.parametrize(
    ("task", "expected"), [("regression", {"bmi", "s5"}), ("multiclass", {"proline"})]
)
def test_permutation_selector_keeps_informative_features_not_noise(task, expected):
    X, y = shipped(task)
    rng = np.random.default_rng(0)
    noise = pd.DataFrame({f"noise_{i}": rng.normal(size=len(X)) for i in range(5)}, index=X.index)
    X = pd.concat([noise, X], axis=1)  # noise first: ties would favour it
    step = PermutationSelector(keep=3).fit(X, y)
    kept = set(step.get_feature_names_out())
    assert len(kept) == 3 and expected <= kept and not any(n.startswith("noise") for n in kept)
    assert step.importances_.shape == (X.shape[1],)


def test_permutation_selector_counts():
    X, y = shipped("binary")
    assert PermutationSelector(keep=0.5).fit(X, y).transform(X).shape[1] == 15
    assert PermutationSelector(keep=0.001).fit(X, y).transform(X).shape[1] == 1  # at least one
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="keep must be"):
            PermutationSelector(keep=bad).fit(X, y)


def test_correlation_filter_keeps_the_earlier_of_each_correlated_pair():
    X, _ = shipped("binary")
    step = CorrelationFilter(threshold=0.95).fit(X)
    kept = list(step.get_feature_names_out())
    assert "mean radius" in kept and "mean perimeter" not in kept and "mean area" not in kept
    corr = X.corr().abs()
    assert (corr.loc[kept, kept].to_numpy()[~np.eye(len(kept), dtype=bool)] <= 0.95).all()
    for i, dropped in enumerate(X.columns):
        if dropped not in kept:
            earlier = [c for c in X.columns[:i] if c in kept]
            assert (corr.loc[earlier, dropped] > 0.95).any()
    np.testing.assert_array_equal(step.transform(X), X[kept].to_numpy())


def test_correlation_filter_keeps_constant_columns():
    X, _ = load_digits(return_X_y=True, as_frame=True)
    constant = [c for c in X.columns if X[c].nunique() == 1]
    assert constant
    kept = set(CorrelationFilter(threshold=0.8).fit(X).get_feature_names_out())
    assert set(constant) <= kept
    assert CorrelationFilter(threshold=1.0).fit(X).transform(X).shape[1] == X.shape[1]


@pytest.mark.parametrize(
    "step",
    [TopKInteractions(), UnivariateSelector(), ModelImportanceSelector(), PermutationSelector()],
    ids=lambda s: type(s).__name__,
)
def test_supervised_steps_need_y(step):
    X, _ = shipped("binary")
    with pytest.raises(ValueError, match="requires y"):
        step.fit(X)


# --- scikit-learn's own estimator checks (numeric steps) --------------------------------


def test_capped_svd_keeps_fewer_components_on_narrow_data():
    X, _ = load_wine(return_X_y=True)  # 13 features: at most 12 components
    narrow = CappedSVD(n_components=20).fit(X)
    assert narrow.transform(X).shape == (len(X), 12)
    assert list(narrow.get_feature_names_out())[-1] == "svd11"
    wide = CappedSVD(n_components=5, random_state=0).fit(X)
    np.testing.assert_array_equal(wide.transform(X), CappedSVD(5, random_state=0).fit_transform(X))
    assert wide.transform(X).shape[1] == 5


@parametrize_with_checks(
    [
        CappedSVD(),
        CorrelationFilter(),
        TopKInteractions(),
        UnivariateSelector(criterion="anova", k=2),
        ModelImportanceSelector(),
        PermutationSelector(),
    ],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
