"""Feature sets: built from YAML, robust to unseen categories and missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT

from automl.features import DateTimeExpander, NativeCategorical, RareCategoryGrouper, SignedLog
from automl.features.pipeline import build_features

SETS = sorted(p.stem for p in (ROOT / "conf" / "features").glob("*.yaml"))


def table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "skewed": rng.lognormal(size=n),
            "cat": pd.Series(rng.choice(["a", "b", "c"], size=n), dtype="str"),
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )


def test_at_least_eight_techniques_ship(train_config):
    targets = set()
    for name in SETS:
        for block in train_config([f"features={name}"]).features.blocks.values():
            targets |= {step._target_ for step in block.steps}
    assert len(targets) >= 8, targets


@pytest.mark.parametrize("name", SETS)
def test_unseen_categories_and_missing_values(name, train_config):
    cfg = train_config([f"features={name}"])
    transformer = build_features(cfg.features)
    train = table()
    y = (train["num"] > 0).astype(int)
    transformer.fit(train, y)
    new = table(5, seed=1)
    new.loc[0, "cat"] = "never-seen"
    new.loc[1, "cat"] = np.nan
    new.loc[2, "num"] = np.nan
    out = transformer.transform(new)
    assert len(out) == 5


@pytest.mark.parametrize("name", SETS)
def test_every_feature_set_names_its_outputs(name, train_config):
    """The server names contributions by ``get_feature_names_out``: every feature set
    answers it, a step after an imputer (numpy input) included."""
    train = table()
    transformer = build_features(train_config([f"features={name}"]).features)
    transformer.fit(train, (train["num"] > 0).astype(int))
    names = transformer.get_feature_names_out()
    assert len(names) == transformer.transform(table(50, seed=1)).shape[1]


def test_rare_category_grouper():
    frame = pd.DataFrame({"c": ["a"] * 98 + ["b", "c"]})
    out = (
        RareCategoryGrouper(min_frequency=0.05)
        .fit(frame)
        .transform(pd.DataFrame({"c": ["a", "b", "zzz", None]}))
    )
    assert out["c"].tolist()[:3] == ["a", "__rare__", "__rare__"]
    assert pd.isna(out["c"].tolist()[3])


def test_native_categorical_maps_unseen_to_missing():
    step = NativeCategorical().fit(pd.DataFrame({"c": ["x", "y"], "n": [1.0, 2.0]}))
    out = step.transform(pd.DataFrame({"c": ["y", "new"], "n": [3.0, 4.0]}))
    assert str(out["c"].dtype) == "category" and pd.isna(out["c"][1])
    assert out["n"].tolist() == [3.0, 4.0]


def test_signed_log_and_datetime_expansion():
    assert np.allclose(SignedLog().fit_transform(np.array([[-np.e + 1], [0.0]])), [[-1], [0]])
    step = DateTimeExpander(parts=("year", "month")).fit(pd.DataFrame({"d": ["2024-03-05"]}))
    assert step.transform(pd.DataFrame({"d": ["2025-07-01"]})).iloc[0].tolist() == [2025, 7]
    assert list(step.get_feature_names_out()) == ["d_year", "d_month"]
