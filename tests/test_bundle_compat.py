"""Bundles saved before the service-layer move still load and predict the same numbers.

``tests/data/bundles_v0/`` holds two bundles written by the code as it was before the
move (an XGBoost pipeline with target encoding on horse_colic, and a model=auto
ensemble of LightGBM and a linear model on iris), the rows they were scored on and
what they predicted then.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from automl import load_model

OLD = Path(__file__).parent / "data" / "bundles_v0"


@pytest.mark.parametrize(
    ("bundle", "rows", "dtype"),
    [("horse_colic_xgb", "horse_colic", str), ("iris_auto", "iris", None)],
)
def test_an_old_bundle_loads_and_predicts_identically(bundle, rows, dtype):
    model = load_model(OLD / bundle)
    frame = pd.read_csv(OLD / f"{rows}_input.csv", dtype=dtype)
    expected = pd.read_csv(OLD / f"{rows}_expected.csv", dtype={"prediction": str})
    scored = model.score(frame)
    scored["prediction"] = scored["prediction"].astype(str)
    assert list(scored.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        scored.reset_index(drop=True), expected, check_dtype=False, rtol=0, atol=1e-12
    )
