"""The Pandera contract: every failure reported at once, named by column and check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.contract import Contract
from automl.errors import ContractError

SPEC = {
    "columns": {
        "age": {"dtype": "int", "nullable": False, "min": 0, "max": 120},
        "color": {"dtype": "category", "allowed": ["red", "blue"]},
        "score": {"dtype": "float"},
        "id": {"dtype": "int", "unique": True, "required": False},
    }
}


def frame(**overrides) -> pd.DataFrame:
    data = {"age": [30, 40, 50], "color": ["red", "blue", None], "score": [0.1, 0.2, np.nan]}
    data.update(overrides)
    return pd.DataFrame(data)


def contract() -> Contract:
    return Contract.from_config(SPEC, name="people")


def test_valid_frame_comes_back_typed():
    out = contract().validate(frame())
    assert list(out.columns) == ["age", "color", "score"]
    assert out["age"].dtype == "float64"
    assert out["color"].isna().sum() == 1


def test_missing_required_column_is_named():
    with pytest.raises(ContractError, match="missing required column.*score"):
        contract().validate(frame().drop(columns="score"))


def test_wrong_dtype_names_column_and_value():
    with pytest.raises(ContractError, match=r"column 'age': wrong type.*'abc'"):
        contract().validate(frame(age=["30", "abc", "50"]))


def test_every_failure_is_reported_at_once():
    bad = frame(age=[-1, 200, None], color=["red", "green", "blue"])
    with pytest.raises(ContractError) as info:
        contract().validate(bad)
    checks = {(f["column"], f["reason"].split(" ")[0]) for f in info.value.failures}
    assert ("age", "failed") in checks  # range
    assert ("age", "missing") in checks  # not nullable
    assert ("color", "value") in checks  # not allowed
    assert "green" in str(info.value)


def test_infinity_is_rejected():
    with pytest.raises(ContractError, match="score.*finite"):
        contract().validate(frame(score=[0.1, np.inf, 0.3]))


def test_unique_column():
    with pytest.raises(ContractError, match="id': duplicate"):
        contract().validate(frame(id=[1, 1, 2]))


def test_empty_input():
    with pytest.raises(ContractError, match="no rows"):
        contract().validate(frame().iloc[:0])


def test_strict_contract_rejects_extra_columns():
    strict = Contract.from_config({**SPEC, "strict": True}, name="people")
    with pytest.raises(ContractError, match="not in the strict contract: extra"):
        strict.validate(frame(extra=[1, 2, 3]))


def test_complete_infers_undeclared_columns():
    completed = contract().complete(frame(city=["a", "b", "c"], n=[1, 2, 3]))
    assert completed.columns["city"].dtype == "category"
    assert completed.columns["n"].dtype == "float"
    assert completed.columns["age"].max == 120


def test_integral_codes_read_as_floats_match_declared_categories():
    spec = {"columns": {"code": {"dtype": "category", "allowed": [1, 2]}}}
    out = Contract.from_config(spec).validate(pd.DataFrame({"code": [1.0, 2.0, np.nan]}))
    assert out["code"].tolist()[:2] == ["1", "2"]


def test_failing_rows_gives_a_reason_per_row():
    reasons = contract().failing_rows(frame(age=[30, -5, 40], color=["red", "blue", "pink"]))
    assert reasons[0] == ""
    assert "age" in reasons[1]
    assert "color" in reasons[2]


def test_round_trip_through_dict():
    again = Contract.from_config(contract().to_dict(), name="people")
    assert again.columns == contract().columns


def test_input_contract_of_a_strict_data_set_ignores_the_target():
    strict = Contract.from_config({**SPEC, "strict": True}, name="people")
    out = strict.without("score").validate(frame())  # a labelled file scored again
    assert "score" not in out.columns


def pandera(c: Contract, frame: pd.DataFrame) -> pd.DataFrame | None:
    """What Pandera alone says: the typed frame, or None when a check fails."""
    prepared = c.prepare(frame)
    try:
        return c.schema(list(prepared.columns)).validate(prepared, lazy=True)
    except Exception:
        return None


CORRUPTIONS = {
    "as is": lambda f, col, spec: f,
    "missing value": lambda f, col, spec: f.assign(**{col: f[col].where(f.index != 0)}),
    "above max": lambda f, col, spec: (
        f.assign(**{col: f[col].mask(f.index == 1, 1e12)}) if spec.dtype != "category" else f
    ),
    "below min": lambda f, col, spec: (
        f.assign(**{col: f[col].mask(f.index == 1, -1e12)}) if spec.dtype != "category" else f
    ),
    "infinite": lambda f, col, spec: (
        f.assign(**{col: f[col].mask(f.index == 2, np.inf)}) if spec.dtype != "category" else f
    ),
    "not allowed": lambda f, col, spec: (
        f.assign(**{col: f[col].mask(f.index == 1, "Robot")}) if spec.dtype == "category" else f
    ),
    "text in a number": lambda f, col, spec: (
        f.assign(**{col: f[col].astype(object).mask(f.index == 1, "old")})
        if spec.dtype != "category"
        else f
    ),
}


@pytest.mark.parametrize("dataset", ["adult", "abalone", "horse_colic", "iris", "diabetes"])
def test_the_vectorised_pass_agrees_with_pandera(dataset):
    """``Contract.passes`` (checks that skip Pandera when everything passes) never passes a
    frame Pandera refuses, and what it returns is Pandera's frame; on real data, clean and
    with every corruption in every column."""
    from helpers import SHARED_DATA, compose_train

    from automl.data.dataset import load_dataset

    if dataset in ("adult", "abalone", "horse_colic") and not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")

    cfg = compose_train([f"dataset={dataset}"])
    data = load_dataset(cfg.dataset, cfg.evaluation, cfg.seed)
    c = data.contract.without(data.target)
    rows = data.test.drop(columns=data.target).head(50).reset_index(drop=True)
    agreed = 0
    for col, spec in c.columns.items():
        for name, corrupt in CORRUPTIONS.items():
            frame = corrupt(rows, col, spec)
            want, fast = pandera(c, frame), c.passes(c.prepare(frame))
            if fast is not None:
                assert want is not None, (col, name)  # never passes what Pandera refuses
                pd.testing.assert_frame_equal(fast, want)
                agreed += 1
            elif name == "as is":
                assert want is None or any(s.unique for s in c.columns.values())
    assert agreed >= len(c.columns)  # the clean frame, and harmless corruptions, pass fast
