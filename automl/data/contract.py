"""The data contract: a data set's columns, types and checks, enforced with Pandera.

A contract is declared in the data set's YAML (``contract.columns``); columns it does
not declare are inferred from the training data, and the completed contract travels in
the model bundle, so the same checks run at train, predict, serve and monitor time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from automl.config import ColumnContract as Column
from automl.errors import ContractError

NUMERIC_DTYPES = {"float": "float64", "int": "float64", "bool": "float64"}
SAMPLE = 5


@dataclass
class Contract:
    """Columns (in order) and whether columns outside the contract are an error."""

    columns: dict[str, Column] = field(default_factory=dict)
    strict: bool = False
    name: str = "data"
    ignored: tuple[str, ...] = ()  # columns allowed even when strict (the target, at predict)

    @classmethod
    def from_config(cls, spec: dict[str, Any], name: str = "data") -> Contract:
        """Build from the plain ``contract`` node of a data set (or a bundle manifest)."""
        columns = {col: Column(**(opts or {})) for col, opts in spec.get("columns", {}).items()}
        return cls(columns=columns, strict=bool(spec.get("strict", False)), name=name)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": {c: asdict(v) for c, v in self.columns.items()}, "strict": self.strict}

    def complete(self, frame: pd.DataFrame) -> Contract:
        """This contract plus an inferred entry for each column of ``frame`` it lacks."""
        extra = [c for c in frame.columns if c not in self.columns]
        if extra and self.strict:
            raise ContractError(
                f"{self.name}: columns not in the strict contract: {', '.join(map(str, extra))}"
            )
        columns = dict(self.columns)
        for col in extra:
            columns[col] = Column(dtype=infer_dtype(frame[col]))
        return Contract(columns=columns, strict=self.strict, name=self.name)

    def without(self, *names: str) -> Contract:
        """The contract for inputs: the same columns less ``names`` (the target)."""
        kept = {c: v for c, v in self.columns.items() if c not in names}
        return Contract(columns=kept, strict=self.strict, name=self.name, ignored=names)

    def check_columns(self, columns: list[str]) -> None:
        """Fail, naming them, when required columns are missing (or extra, when strict)."""
        present = set(columns)
        missing = [c for c, v in self.columns.items() if v.required and c not in present]
        if missing:
            raise ContractError(
                f"{self.name}: missing required column(s): {', '.join(missing)}",
                [
                    column_failure(c, "column_in_dataframe", "required column missing")
                    for c in missing
                ],
            )
        if self.strict:
            extra = [c for c in columns if c not in self.columns and c not in self.ignored]
            if extra:
                raise ContractError(
                    f"{self.name}: columns not in the strict contract: {', '.join(extra)}",
                    [column_failure(c, "strict", "column not in the contract") for c in extra],
                )

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The contract's columns of ``frame``, categorical ones as strings (NaN kept)."""
        present = [c for c in self.columns if c in frame.columns]
        out = frame.loc[:, present].copy()
        for col in present:
            if self.columns[col].dtype == "category":
                out[col] = as_category_strings(out[col])
        return out

    def schema(self, present: list[str]) -> pa.DataFrameSchema:
        """The Pandera schema for the columns in ``present``."""
        return pa.DataFrameSchema(
            {c: pandera_column(self.columns[c]) for c in present}, coerce=False
        )

    def validate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Check ``frame`` lazily and return it typed; every failure is reported at once."""
        if len(frame) == 0:
            raise ContractError(f"{self.name}: the input has no rows")
        self.check_columns(list(frame.columns))
        prepared = self.prepare(frame)
        passed = self.passes(prepared)
        if passed is not None:
            return passed
        try:
            return self.schema(list(prepared.columns)).validate(prepared, lazy=True)
        except pa.errors.SchemaErrors as exc:
            failures = summarize_failures(exc.failure_cases)
            raise ContractError(format_failures(self.name, failures), failures) from None

    def passes(self, prepared: pd.DataFrame) -> pd.DataFrame | None:
        """``prepared`` typed as Pandera returns it, when a few vectorised checks per
        column show that every check of the contract passes; None when one fails, or a
        column needs Pandera's own conversion or checks (values of another type, date-times,
        unique columns): Pandera then decides, and names what fails.

        Pandera costs about a millisecond a column whatever the rows; a request of a few
        rows, or a chunk, that passes (the usual case) does not pay it. tests/test_contract.py
        checks that this agrees with Pandera."""
        numeric = []
        for col in prepared.columns:
            spec, series = self.columns[col], prepared[col]
            if spec.unique or spec.dtype not in (*NUMERIC_DTYPES, "category"):
                return None
            missing = series.isna().to_numpy()
            if not spec.nullable and missing.any():
                return None
            if spec.dtype == "category":
                allowed = None if spec.allowed is None else [str(v) for v in spec.allowed]
            else:
                kind = series.dtype
                if not pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_bool_dtype(kind):
                    return None
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)[~missing]
                if np.isinf(values).any():
                    return None
                if spec.min is not None and (values < spec.min).any():
                    return None
                if spec.max is not None and (values > spec.max).any():
                    return None
                numeric.append(col)
                allowed = spec.allowed
            if allowed is not None and not series[~missing].isin(allowed).all():
                return None
        return prepared.astype(dict.fromkeys(numeric, "float64")) if numeric else prepared

    def failing_rows(self, frame: pd.DataFrame) -> pd.Series:
        """For each row of ``frame``, why it breaks the contract ('' when it passes).

        A row that fails several checks gets every reason ("column: check"), joined by
        "; " in column order. The result has ``frame``'s index, whatever it is (a chunk's
        rows keep their numbers). Pandera skips a column's other checks when some of its
        values do not convert to its type, so those values are set aside and the checks
        run again on the rest. A failure no single row can be blamed for (a required
        column missing) is given to every row.
        """
        rows = self.prepare(frame).reset_index(drop=True)  # failure cases index positions
        cases = self.failure_cases(rows)
        wrong_type = cases.iloc[:0]
        for _ in range(3):  # converting the rest of a column never fails twice, in practice
            coerce = cases["check"].str.startswith("coerce_dtype") & cases["index"].notna()
            if not coerce.any():
                break
            wrong_type = pd.concat([wrong_type, cases[coerce]])
            for col, group in cases[coerce].groupby("column", sort=False):
                rows.loc[group["index"].astype(int).to_numpy(), col] = np.nan
            cases = self.failure_cases(rows)
            # a value set aside is not also reported as missing
            set_aside = pd.MultiIndex.from_arrays(
                [wrong_type["column"], wrong_type["index"].astype(int)]
            )
            blamed = cases["index"].notna() & (cases["check"] == "not_nullable")
            keys = pd.MultiIndex.from_arrays(
                [cases["column"], cases["index"].where(blamed, -1).astype(int)]
            )
            cases = cases[~(blamed & keys.isin(set_aside))]
        cases = pd.concat([wrong_type, cases], ignore_index=True)
        reasons = np.full(len(rows), "", dtype=object)
        if len(cases):
            order = {c: i for i, c in enumerate(self.columns)}
            checks = cases["check"].map(describe_check)
            checks = checks.where(cases["check"] != "column_in_dataframe", "column missing")
            cases = cases.assign(
                why=cases["column"].astype(str) + ": " + checks,
                rank=cases["column"].map(order),
            ).drop_duplicates(["index", "why"])
            located = cases[cases["index"].notna()].astype({"index": int})
            located = located.sort_values(["index", "rank"], kind="stable")
            joined = located.groupby("index", sort=False)["why"].agg("; ".join)
            reasons[joined.index.to_numpy()] = joined.to_numpy()
            everywhere = "; ".join(cases.loc[cases["index"].isna(), "why"].unique())
            if everywhere:
                reasons = np.where(reasons == "", everywhere, reasons + "; " + everywhere)
        return pd.Series(reasons, index=frame.index, dtype=object)

    def failure_cases(self, prepared: pd.DataFrame) -> pd.DataFrame:
        """Pandera's failure cases for ``prepared`` (none when it passes), every column
        of the contract checked, a missing required one included."""
        try:
            self.schema(list(self.columns)).validate(prepared, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            table_level = cases["column"].isna()  # e.g. a required column missing: named here
            column = cases["column"].where(~table_level, cases["failure_case"].astype(str))
            return cases.assign(column=column, check=cases["check"].astype(str))
        return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def infer_dtype(series: pd.Series) -> str:
    """The contract dtype of a column as read."""
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "category"


TEXT_SAMPLE = 5000  # values read to measure length and words


def is_free_text(
    values: pd.Series, max_categories: int = 50, min_length: float = 30, min_words: float = 3
) -> bool:
    """Whether string values are free text rather than categories or codes: more distinct
    values than ``max_categories``, and on average at least ``min_length`` characters and
    ``min_words`` words (long codes and identifiers have no spaces)."""
    present = values.dropna()
    sample = present.head(TEXT_SAMPLE).astype(str).str.strip()
    long = sample.str.len().mean() >= min_length  # checked first: cheap on a sample
    if not (long and sample.str.split().str.len().mean() >= min_words):
        return False
    return bool(present.nunique() > max_categories)


def as_category_strings(series: pd.Series) -> pd.Series:
    """Categorical values as strings; integral numbers lose their '.0' (1.0 -> '1')."""
    if pd.api.types.is_float_dtype(series):
        finite = series.dropna()
        if len(finite) and bool(np.all(np.mod(finite, 1) == 0)):
            series = series.astype("Int64")
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.astype("str").where(series.notna(), np.nan)
    return series.astype("str")


def pandera_column(spec: Column) -> pa.Column:
    """One column of the Pandera schema from its contract."""
    checks: list[pa.Check] = []
    if spec.min is not None:
        checks.append(pa.Check.ge(spec.min))
    if spec.max is not None:
        checks.append(pa.Check.le(spec.max))
    if spec.allowed is not None:
        allowed = spec.allowed
        if spec.dtype == "category":
            allowed = [str(v) for v in allowed]
        checks.append(pa.Check.isin(allowed))
    dtype = NUMERIC_DTYPES.get(spec.dtype)
    if dtype:
        checks.append(
            pa.Check(lambda s: ~np.isinf(s), element_wise=False, ignore_na=True, name="finite")
        )
    elif spec.dtype == "datetime":
        dtype = "datetime64[ns]"
    return pa.Column(
        dtype,
        checks=checks,
        nullable=spec.nullable,
        unique=spec.unique,
        required=spec.required,
        coerce=dtype is not None,
    )


def column_failure(column: str, check: str, reason: str) -> dict[str, Any]:
    """A failure of a whole column (missing, or extra), shaped as ``summarize_failures``'."""
    return {
        "column": column,
        "check": check,
        "reason": reason,
        "count": 1,
        "values": [],
        "rows": [],
    }


def describe_check(check: str) -> str:
    """A check's name as a reader would say it."""
    if check.startswith("coerce_dtype"):
        return f"wrong type, expected {check.removeprefix('coerce_dtype')}"
    if check == "not_nullable":
        return "missing value not allowed"
    if check.startswith("isin"):
        return f"value not in the allowed set {check.removeprefix('isin')}"
    if check == "field_uniqueness":
        return "duplicate value in a unique column"
    return f"failed check {check}"


def summarize_failures(cases: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per (column, check): count, sample values and sample rows."""
    failures = []
    for (col, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        values = group["failure_case"].drop_duplicates().head(SAMPLE).tolist()
        rows = group["index"].dropna().head(SAMPLE).tolist()
        failures.append(
            {
                "column": col,
                "check": str(check),
                "reason": describe_check(str(check)),
                "count": int(len(group)),
                "values": values,
                "rows": [int(r) for r in rows],
            }
        )
    return failures


def format_failures(name: str, failures: list[dict[str, Any]]) -> str:
    """The one message a user sees for a broken contract."""
    lines = [f"{name}: the data breaks its contract ({len(failures)} problem(s)):"]
    for f in failures:
        where = f" at rows {f['rows']}" if f["rows"] else ""
        sample = f"; e.g. {f['values']}" if f["values"] and f["values"] != [None] else ""
        lines.append(f"  - column '{f['column']}': {f['reason']} ({f['count']}x{where}{sample})")
    return "\n".join(lines)
