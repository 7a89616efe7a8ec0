"""The data profile report of `python -m automl.ingest`: profile.html (with PNG plots in
plots/) and profile.md, built on the report kit (:mod:`automl.reports`) and published
together so that a crash leaves no half report.

Contents: a summary, the columns (kind, why, missing %, distinct values, dropped or not),
missingness, one distribution plot per column, the target's balance, duplicate rows and
leakage suspects (single columns that nearly predict the target on their own)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from automl.reports import (
    COLORS,
    Html,
    Image,
    code,
    fields,
    figure,
    figure_html,
    figures,
    margins,
    number,
    page,
    paragraph,
    percent,
    plot_label,
    save_figure,
    section,
    staged_report,
    table,
)

if TYPE_CHECKING:
    from automl.ingest.infer import ColumnKind

NUMERIC_KINDS = ("numeric", "integer")
TOP_CATEGORIES = 20
MAX_BAR_COLUMNS = 60  # the missingness chart shows at most this many columns
LEAKAGE_ROWS = 20_000
LEAKAGE_FOLDS = 3
TOP_SCORES = 10
DUPLICATE_EXAMPLES = 5
PLOTS = "plots"
# the files this report owns in its folder (others found there are left alone)
OWN_FILES = re.compile(rf"{PLOTS}/(missingness|target|dist-\d{{3}}-[A-Za-z0-9_-]*)\.png")


# --------------------------------------------------------------------------- findings


@dataclass
class ColumnInfo:
    name: str
    kind: str
    reason: str
    missing: int
    missing_pct: float
    distinct: int
    dropped: bool
    role: str  # "target", "dropped" or "feature"


@dataclass
class DataProfile:
    """Everything the report says, before it is rendered to HTML or Markdown."""

    title: str
    target: str
    task: str
    rows: int
    total_rows: int | None
    columns: list[ColumnInfo]
    missingness_plot: Image | None = None
    distributions: list[Image] = field(default_factory=list)
    unplotted: list[str] = field(default_factory=list)
    target_counts: list[tuple[str, int, float]] = field(default_factory=list)  # label, n, share
    target_stats: dict[str, float] = field(default_factory=dict)
    target_missing: int = 0
    target_plot: Image | None = None
    duplicates: int = 0
    duplicate_examples: list[tuple[int, int]] = field(default_factory=list)  # (row, first seen)
    leakage_threshold: float = 0.98
    leakage_metric: str = ""
    leakage_rows: int = 0
    leakage_note: str = ""
    scores: list[tuple[str, float]] = field(default_factory=list)  # best first
    seed: int = 0
    dropped_kinds: tuple[str, ...] = ()  # kinds kept in the data, dropped from the features

    @property
    def suspects(self) -> list[tuple[str, float]]:
        return [(col, s) for col, s in self.scores if s >= self.leakage_threshold]


def write_report(
    frame: pd.DataFrame,
    kinds: dict[str, ColumnKind],
    target: str,
    task: str,
    out_dir: Path,
    title: str,
    leakage_threshold: float = 0.98,
    max_plots: int = 40,
    seed: int = 0,
    total_rows: int | None = None,
    dropped_kinds: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write profile.html (with PNG plots beside it in out_dir/plots/) and profile.md;
    return {"html": ..., "markdown": ...}.

    ``frame`` is the canonical typed data (possibly the first rows or a sample of a larger
    file: ``total_rows`` is then the size of the whole file, for the report to say so).
    Everything is written in a staging folder beside ``out_dir`` and published at the end,
    the HTML last (:func:`automl.reports.staged_report`).
    """
    out_dir = Path(out_dir)
    with staged_report(out_dir, last=("profile.md", "profile.html"), owned=OWN_FILES) as root:
        (root / PLOTS).mkdir()
        profile = describe_data(
            frame,
            kinds,
            target,
            task,
            root,
            title,
            leakage_threshold=leakage_threshold,
            max_plots=max_plots,
            seed=seed,
            total_rows=total_rows,
            dropped_kinds=dropped_kinds,
        )
        (root / "profile.md").write_text(render_markdown(profile), encoding="utf-8")
        (root / "profile.html").write_text(render_html(profile), encoding="utf-8")
    return {"html": out_dir / "profile.html", "markdown": out_dir / "profile.md"}


def describe_data(
    frame: pd.DataFrame,
    kinds: dict[str, ColumnKind],
    target: str,
    task: str,
    root: Path,
    title: str,
    leakage_threshold: float = 0.98,
    max_plots: int = 40,
    seed: int = 0,
    total_rows: int | None = None,
    dropped_kinds: tuple[str, ...] = (),
) -> DataProfile:
    """The findings of the report, with its plots written to ``root``/plots/."""
    if task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"task must be binary, multiclass or regression, not {task!r}")
    names = [str(c) for c in frame.columns]
    frame = frame.set_axis(names, axis=1)
    if target not in names:
        raise ValueError(f"the target {target!r} is not a column of the data")
    kind_of = {col: kind_for(frame[col], kinds.get(col)) for col in names}
    columns = []
    for col in names:
        series = frame[col]
        missing = int(series.isna().sum())
        kind, reason = kind_of[col]
        dropped = col != target and kind in dropped_kinds
        columns.append(
            ColumnInfo(
                name=col,
                kind=kind,
                reason=reason,
                missing=missing,
                missing_pct=100.0 * missing / len(frame) if len(frame) else 0.0,
                distinct=distinct(series),
                dropped=dropped,
                role="target" if col == target else "dropped" if dropped else "feature",
            )
        )
    profile = DataProfile(
        title=title,
        target=target,
        task=task,
        rows=len(frame),
        total_rows=total_rows,
        columns=columns,
        leakage_threshold=leakage_threshold,
        seed=seed,
        dropped_kinds=tuple(dropped_kinds),
    )
    profile.missingness_plot = missingness_plot(columns, root)
    plot_distributions(profile, frame, kind_of, root, max_plots)
    target_balance(profile, frame[target], root)
    duplicate_rows(profile, frame)
    features = [c.name for c in columns if c.role == "feature"]
    leakage(profile, frame, features, kind_of, seed)
    return profile


def kind_for(series: pd.Series, kind: ColumnKind | None) -> tuple[str, str]:
    """The column's kind and reason, from ``kinds`` or (for a column it lacks) the dtype."""
    if kind is not None:
        return kind.kind, kind.reason
    if pd.api.types.is_bool_dtype(series):
        return "boolean", "true/false values (from the data type)"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime", "date-time values (from the data type)"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric", "numbers (from the data type)"
    return "categorical", "text values (from the data type)"


def distinct(series: pd.Series) -> int:
    try:
        return int(series.nunique(dropna=True))
    except TypeError:  # unhashable values
        return int(series.dropna().astype(str).nunique())


# --------------------------------------------------------------------------- plots


def save(fig: Figure, root: Path, name: str, caption: str) -> Image:
    """``fig`` as ``plots/<name>.png`` of the report folder ``root``."""
    return save_figure(fig, root, f"{PLOTS}/{name}.png", caption)


def bar_chart(labels: list[str], values: list[float], xlabel: str, title: str) -> Figure:
    """Horizontal bars, first label on top."""
    fig = figure(6.4, 0.26 * len(labels) + 1.4)
    ax = fig.add_subplot()
    positions = np.arange(len(labels))
    ax.barh(positions, values, color=COLORS[0])
    texts = [plot_label(v) for v in labels]
    ax.set_yticks(positions, texts, fontsize=8)
    ax.invert_yaxis()
    longest = max((len(t) for t in texts), default=1)
    margins(fig, left=min(2.4, 0.3 + 0.065 * longest), bottom=0.55)
    ax.set_xlabel(xlabel)
    ax.set_title(plot_label(title, 70))
    return fig


def missingness_plot(columns: list[ColumnInfo], root: Path) -> Image:
    shown = sorted(columns, key=lambda c: -c.missing_pct)[:MAX_BAR_COLUMNS]
    shown = [c for c in columns if c in shown]  # keep the data's column order
    fig = bar_chart(
        [c.name for c in shown], [c.missing_pct for c in shown], "missing %", "Missing values"
    )
    fig.axes[0].set_xlim(0, 100)
    caption = "Missing % per column"
    if len(shown) < len(columns):
        caption += f" (the {len(shown)} columns with the most missing values)"
    return save(fig, root, "missingness", caption)


def plot_distributions(
    profile: DataProfile,
    frame: pd.DataFrame,
    kind_of: dict[str, tuple[str, str]],
    root: Path,
    max_plots: int,
) -> None:
    """One plot per column (the target has its own section), up to ``max_plots``."""
    for i, col in enumerate(frame.columns):
        kind = kind_of[col][0]
        if col == profile.target or kind in ("identifier", "constant"):
            continue
        if len(profile.distributions) >= max_plots:
            profile.unplotted.append(col)
            continue
        series = frame[col].dropna()
        if series.empty:
            profile.unplotted.append(col)
            continue
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", col)[:40]
        fig, caption = distribution_figure(col, kind, series)
        profile.distributions.append(save(fig, root, f"dist-{i:03d}-{slug}", caption))


def distribution_figure(col: str, kind: str, series: pd.Series) -> tuple[Figure, str]:
    if kind in NUMERIC_KINDS:
        values = as_float(series)
        values = values[np.isfinite(values)]
        if values.size:
            return histogram(values, col, "value"), f"{col}: histogram ({kind})"
    if kind == "datetime":
        stamps = pd.to_datetime(series, errors="coerce").dropna()
        if not stamps.empty:
            return date_counts(stamps, col)
    if kind == "text":
        lengths = series.astype(str).str.len().to_numpy(dtype=float)
        return histogram(lengths, col, "length (characters)"), f"{col}: text length histogram"
    counts = series.astype(str).value_counts()
    top = counts.iloc[:TOP_CATEGORIES]
    fig = bar_chart(list(top.index), list(top.to_numpy()), "rows", col)
    caption = f"{col}: {'top ' + str(TOP_CATEGORIES) + ' of ' if len(counts) > len(top) else ''}"
    caption += f"{len(counts)} values ({kind})"
    return fig, caption


def histogram(values: np.ndarray, title: str, xlabel: str) -> Figure:
    fig = figure(6.4, 3.2)
    ax = fig.add_subplot()
    distinct_values = np.unique(values) if values.size else values
    bins = min(30, max(len(distinct_values), 1))
    ax.hist(values, bins=bins, color=COLORS[0])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(plot_label(title, 70))
    margins(fig, left=0.8, bottom=0.55)
    return fig


def date_counts(stamps: pd.Series, col: str) -> tuple[Figure, str]:
    """Rows per day (spans up to ~3 months), per month (up to 20 years) or per year."""
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    span = stamps.max() - stamps.min()
    if span <= pd.Timedelta(days=92):
        freq, unit = "D", "day"
    elif span <= pd.Timedelta(days=366 * 20):
        freq, unit = "M", "month"
    else:
        freq, unit = "Y", "year"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        periods = stamps.dt.to_period(freq)
    counts = periods.value_counts().sort_index()
    full = pd.period_range(counts.index.min(), counts.index.max(), freq=freq)
    counts = counts.reindex(full, fill_value=0)
    fig = figure(6.4, 3.2)
    ax = fig.add_subplot()
    ax.bar(np.arange(len(counts)), counts.to_numpy(), color=COLORS[0], width=0.9)
    step = max(1, len(counts) // 10)
    ticks = np.arange(0, len(counts), step)
    ax.set_xticks(ticks, [str(counts.index[t]) for t in ticks], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("rows")
    ax.set_title(plot_label(col, 70))
    margins(fig, left=0.8, bottom=0.75)
    return fig, f"{col}: rows per {unit}"


# --------------------------------------------------------------------------- sections


def target_balance(profile: DataProfile, target: pd.Series, root: Path) -> None:
    profile.target_missing = int(target.isna().sum())
    present = target.dropna()
    if present.empty:
        return
    if profile.task == "regression":
        values = pd.Series(as_float(present)).dropna()
        if values.empty:
            return
        profile.target_stats = {
            "mean": float(values.mean()),
            "std": float(values.std()) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "median": float(values.median()),
            "max": float(values.max()),
        }
        fig = histogram(values.to_numpy(), f"{profile.target} (target)", "value")
        profile.target_plot = save(fig, root, "target", "Target histogram")
        return
    counts = present.astype(str).value_counts()
    profile.target_counts = [(str(k), int(n), float(n) / len(present)) for k, n in counts.items()]
    shown = counts.iloc[:MAX_BAR_COLUMNS]
    fig = bar_chart(list(shown.index), list(shown.to_numpy()), "rows", f"{profile.target}")
    caption = "Rows per class" + (
        f" (the {len(shown)} largest classes)" if len(shown) < len(counts) else ""
    )
    profile.target_plot = save(fig, root, "target", caption)


def duplicate_rows(profile: DataProfile, frame: pd.DataFrame) -> None:
    """Rows equal to an earlier row in every column (the first of each group not counted)."""
    if frame.empty or frame.shape[1] == 0:
        return
    try:
        dup = frame.duplicated(keep="first").to_numpy()
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts): compare their text
        text = frame.astype(str)
        dup = text.duplicated(keep="first").to_numpy()
        hashes = pd.util.hash_pandas_object(text, index=False).to_numpy()
    profile.duplicates = int(dup.sum())
    if not profile.duplicates:
        return
    first: dict[int, int] = {}
    for position, h in enumerate(hashes):
        first.setdefault(int(h), position)
    examples = np.flatnonzero(dup)[:DUPLICATE_EXAMPLES]
    profile.duplicate_examples = [(int(p), first[int(hashes[p])]) for p in examples]


# --------------------------------------------------------------------------- leakage


def leakage(
    profile: DataProfile,
    frame: pd.DataFrame,
    features: list[str],
    kind_of: dict[str, tuple[str, str]],
    seed: int,
) -> None:
    """Score each feature alone with a depth-4 tree, 3-fold cross-validated (out-of-fold
    AUC, one-vs-rest for multiclass; R² for regression), on at most LEAKAGE_ROWS rows."""
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    regression = profile.task == "regression"
    profile.leakage_metric = "R²" if regression else "ROC AUC"
    if profile.task == "multiclass":
        profile.leakage_metric += " (one-vs-rest, macro)"
    y_raw = frame[profile.target]
    if regression:
        y_raw = pd.to_numeric(y_raw, errors="coerce")
    keep = y_raw.notna().to_numpy()
    data = frame.loc[keep]
    if len(data) > LEAKAGE_ROWS:
        data = data.sample(LEAKAGE_ROWS, random_state=seed)
    if regression:
        y = pd.to_numeric(data[profile.target], errors="coerce").to_numpy(dtype=float)
    else:
        y = pd.factorize(data[profile.target].astype(str), sort=True)[0]
    profile.leakage_rows = len(data)
    if not features:
        profile.leakage_note = "no feature columns to score"
        return
    if regression:
        if len(data) < 2 * LEAKAGE_FOLDS or np.unique(y).size < 2:
            profile.leakage_note = "too few rows or target values to score the columns"
            return
        folds = list(KFold(LEAKAGE_FOLDS, shuffle=True, random_state=seed).split(y))
    else:
        classes, class_counts = np.unique(y, return_counts=True)
        if classes.size < 2 or class_counts.max() < LEAKAGE_FOLDS:
            profile.leakage_note = "too few rows or classes to score the columns"
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes rarer than the folds
            splitter = StratifiedKFold(LEAKAGE_FOLDS, shuffle=True, random_state=seed)
            folds = list(splitter.split(np.zeros(len(y)), y))

    scores = []
    for col in features:
        x = data[col]
        kind = kind_of[col][0]
        oof = np.zeros(len(y)) if regression else np.zeros((len(y), classes.size))
        for train, test in folds:
            x_train, x_test = encode(x, kind, train, test, y, profile.task)
            if regression:
                model = DecisionTreeRegressor(max_depth=4, random_state=seed)
                model.fit(x_train, y[train])
                oof[test] = model.predict(x_test)
            else:
                model = DecisionTreeClassifier(max_depth=4, random_state=seed)
                model.fit(x_train, y[train])
                oof[np.ix_(test, model.classes_)] = model.predict_proba(x_test)
        if regression:
            score = float(r2_score(y, oof))
        elif classes.size == 2:
            score = float(roc_auc_score(y, oof[:, 1]))
        else:
            oof = oof / np.clip(oof.sum(axis=1, keepdims=True), 1e-12, None)
            score = float(roc_auc_score(y, oof, multi_class="ovr", labels=classes))
        scores.append((col, score))
    profile.scores = sorted(scores, key=lambda s: -s[1])


def encode(
    x: pd.Series, kind: str, train: np.ndarray, test: np.ndarray, y: np.ndarray, task: str
) -> tuple[np.ndarray, np.ndarray]:
    """One column as numbers for a tree, missing values below every value.

    Numbers stay numbers (date-times: seconds); other values get ordinal codes ordered by
    the training fold's target mean (binary, regression) or by frequency (multiclass), so
    that a depth-4 tree can separate many categories; values unseen in training and
    missing values get codes of their own."""
    values = None
    if kind == "datetime" or pd.api.types.is_datetime64_any_dtype(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamps = pd.to_datetime(x, errors="coerce", utc=True, format="mixed")
        values = as_float((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    elif kind in NUMERIC_KINDS or pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
        values = as_float(x)
    if values is not None:
        values[~np.isfinite(values)] = np.nan
        low = np.nanmin(values) if np.isfinite(values).any() else 0.0
        values = np.where(np.isnan(values), low - 1.0, values)
        return values[train, None], values[test, None]
    text = x.astype(str).where(x.notna()).to_numpy(dtype=object)
    train_values = pd.Series(text[train])
    if task == "multiclass":
        order = train_values.value_counts().index
    else:
        means = pd.Series(y[train], dtype=float).groupby(train_values.to_numpy()).mean()
        order = means.sort_values(kind="stable").index
    codes = {value: float(i) for i, value in enumerate(order)}

    def code(values: np.ndarray) -> np.ndarray:
        mapped = pd.Series(values).map(codes)
        mapped[pd.isna(values)] = -1.0  # missing
        return mapped.fillna(-2.0).to_numpy(dtype=float)[:, None]  # unseen in training

    return code(text[train]), code(text[test])


def as_float(x: pd.Series) -> np.ndarray:
    """The values as float64, missing and unparseable ones NaN."""
    if pd.api.types.is_bool_dtype(x):
        x = x.astype("boolean")
    elif not pd.api.types.is_numeric_dtype(x):
        x = pd.to_numeric(x, errors="coerce")
    return x.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


# --------------------------------------------------------------------------- rendering


def rows_note(p: DataProfile) -> str:
    if p.total_rows is not None and p.total_rows > p.rows:
        return (
            f"This profile covers {number(p.rows)} of the data's {number(p.total_rows)} "
            "rows (a sample); counts and shares below are over those rows."
        )
    if p.total_rows is not None:
        return f"This profile covers all {number(p.rows)} rows of the data."
    return f"This profile covers {number(p.rows)} rows."


def summary_rows(p: DataProfile) -> list[tuple[str, str]]:
    features = sum(c.role == "feature" for c in p.columns)
    dropped = sum(c.dropped for c in p.columns)
    rows = number(p.rows)
    if p.total_rows is not None and p.total_rows > p.rows:
        rows += f" of {number(p.total_rows)} (a sample)"
    return [
        ("Rows profiled", rows),
        ("Columns", number(len(p.columns))),
        ("Task", p.task),
        ("Target", p.target),
        ("Feature columns", number(features)),
        ("Dropped from features", number(dropped)),
        ("Duplicate rows", f"{number(p.duplicates)} ({percent(dup_share(p))})"),
        ("Leakage suspects", number(len(p.suspects))),
    ]


def column_rows(p: DataProfile) -> list[list[str]]:
    """The columns table (plain text), for HTML and Markdown alike."""
    return [
        [
            c.name,
            c.kind,
            c.reason,
            percent(c.missing_pct),
            number(c.missing),
            number(c.distinct),
            "target" if c.role == "target" else "yes" if c.dropped else "no",
        ]
        for c in p.columns
    ]


COLUMN_HEADERS = ["column", "kind", "why", "missing %", "missing", "distinct", "dropped"]
NUMERIC_COLUMNS = {3, 4, 5}


def dropped_note(p: DataProfile) -> str:
    """Which kinds of column are kept in the data but not used as features."""
    if not p.dropped_kinds:
        return "Every column but the target is a feature."
    return f"Kinds {', '.join(p.dropped_kinds)} are kept in the data but dropped from the features."


def missing_note(p: DataProfile) -> str:
    incomplete = sum(bool(c.missing) for c in p.columns)
    if not incomplete:
        return "No missing values."
    return (
        f"{incomplete} of {len(p.columns)} columns have missing values; "
        f"{percent(missing_cells_pct(p))} of all cells are missing."
    )


def duplicates_note(p: DataProfile) -> str:
    return (
        f"{number(p.duplicates)} duplicate rows ({percent(dup_share(p))} of "
        f"{number(p.rows)}): rows equal to an earlier row in every column."
    )


def missing_cells_pct(p: DataProfile) -> float:
    cells = p.rows * len(p.columns)
    return 100.0 * sum(c.missing for c in p.columns) / cells if cells else 0.0


def dup_share(p: DataProfile) -> float:
    return 100.0 * p.duplicates / p.rows if p.rows else 0.0


def leakage_intro(p: DataProfile) -> str:
    return (
        f"Each feature alone, scored by a depth-4 decision tree with {LEAKAGE_FOLDS}-fold "
        f"cross-validation ({p.leakage_metric}) on {number(p.leakage_rows)} rows "
        f"(sampled with seed {p.seed}). A column scoring at least {p.leakage_threshold:g} "
        "on its own nearly predicts the target: check that it is known before the outcome."
    )


def score_rows(p: DataProfile) -> list[tuple[str, str, str]]:
    """The best single-column scores: column, score, suspect or not."""
    return [
        (c, f"{s:.4f}", "yes" if s >= p.leakage_threshold else "no")
        for c, s in p.scores[:TOP_SCORES]
    ]


NAV = [
    ("summary", "Summary"),
    ("columns", "Columns"),
    ("missingness", "Missingness"),
    ("distributions", "Distributions"),
    ("target", "Target"),
    ("duplicates", "Duplicates"),
    ("leakage", "Leakage"),
]


def render_html(p: DataProfile) -> str:
    """profile.html: one page, its plots in plots/ beside it."""
    columns = [[code(row[0]), *row[1:]] for row in column_rows(p)]
    roles = {"target": "strong", "dropped": "muted", "feature": ""}
    missing = [paragraph(missing_note(p), "" if missing_cells_pct(p) else "ok")]
    if p.missingness_plot:
        missing.append(figure_html(p.missingness_plot))
    distributions = [
        paragraph(
            f"Histograms for numbers, the top {TOP_CATEGORIES} values for categories, "
            "rows per day/month/year for dates."
        ),
        figures(p.distributions),
    ]
    if p.unplotted:
        names = Html(", ".join(code(n) for n in p.unplotted))
        distributions.append(paragraph(Html(f"Not plotted ({len(p.unplotted)}): {names}."), "note"))
    body = [
        section(
            "summary",
            "Summary",
            paragraph(rows_note(p), "note"),
            fields(summary_rows(p), "summary-table"),
        ),
        section(
            "columns",
            "Columns",
            table(
                COLUMN_HEADERS,
                columns,
                NUMERIC_COLUMNS,
                classes=[roles[c.role] for c in p.columns],
                table_id="columns-table",
            ),
            paragraph(
                dropped_note(p),
                "note",
            ),
        ),
        section("missingness", "Missingness", *missing),
        section("distributions", "Distributions", *distributions),
        section("target", Html(f"Target: {code(p.target)}"), *target_html(p)),
        section("duplicates", "Duplicate rows", *duplicates_html(p)),
        section("leakage", "Leakage suspects", *leakage_html(p)),
    ]
    return page(f"Data profile: {p.title}", body, NAV)


def target_html(p: DataProfile) -> list[str]:
    parts = []
    if p.target_missing:
        parts.append(paragraph(f"{number(p.target_missing)} rows have no target value.", "bad"))
    if p.target_counts:
        rows = [(code(k), number(n), percent(100 * s)) for k, n, s in p.target_counts]
        parts.append(table(["class", "rows", "share"], rows, {1, 2}, table_id="target-table"))
    if p.target_stats:
        stats = [[number(v) for v in p.target_stats.values()]]
        parts.append(
            table(list(p.target_stats), stats, range(len(stats[0])), table_id="target-table")
        )
    if p.target_plot:
        parts.append(figure_html(p.target_plot))
    return parts


def duplicates_html(p: DataProfile) -> list[str]:
    if not p.duplicates:
        return [paragraph(duplicates_note(p), "ok", "duplicate-count")]
    return [
        paragraph(duplicates_note(p), "warn", "duplicate-count"),
        table(["row", "same as row"], p.duplicate_examples, {0, 1}, table_id="duplicate-examples"),
        paragraph("Row numbers count from 0 in the profiled rows.", "note"),
    ]


def leakage_html(p: DataProfile) -> list[str]:
    if p.leakage_note:
        return [paragraph(f"Not scored: {p.leakage_note}.", "note")]
    parts = [paragraph(leakage_intro(p))]
    if p.suspects:
        rows = [(code(c), f"{s:.4f}") for c, s in p.suspects]
        parts.append(
            table(
                ["column", "score"],
                rows,
                {1},
                classes=["flagged"] * len(rows),
                table_id="leakage-suspects",
            )
        )
    else:
        parts.append(paragraph("No leakage suspects.", "ok", "leakage-suspects"))
    parts.append("<h3>Top single-column scores</h3>")
    rows = [(code(c), score, suspect) for c, score, suspect in score_rows(p)]
    parts.append(table(["column", "score", "suspect"], rows, {1}, table_id="leakage-scores"))
    return parts


def md_code(value: Any) -> str:
    """``value`` as an inline code span, safe in a table cell."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    ticks = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or ticks else ""
    return f"{fence}{pad}{text}{pad}{fence}" if text else "` `"


MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|])")


def md_text(value: Any) -> str:
    """Plain text with Markdown (and inline HTML) characters escaped, on one line."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def md_table(headers: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    out = ["| " + " | ".join(headers) + " |"]
    out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def md_image(image: Image) -> str:
    return f"![{md_text(image.caption)}]({image.src})"


def render_markdown(p: DataProfile) -> str:
    """profile.md: the same findings as the page, its plots linked from plots/."""
    m = [f"# Data profile: {md_text(p.title)}", "", md_text(rows_note(p)), "", "## Summary", ""]
    m.append(
        md_table(
            ["", ""],
            [[md_text(k), md_code(v) if k == "Target" else md_text(v)] for k, v in summary_rows(p)],
        )
    )
    m += ["", "## Columns", ""]
    m.append(
        md_table(
            COLUMN_HEADERS,
            [[md_code(row[0]), row[1], md_text(row[2]), *row[3:]] for row in column_rows(p)],
            right=NUMERIC_COLUMNS,
        )
    )
    m += [
        "",
        dropped_note(p),
    ]
    m += ["", "## Missingness", ""]
    m.append(missing_note(p))
    if p.missingness_plot:
        m += ["", md_image(p.missingness_plot)]
    m += ["", "## Distributions", ""]
    m += [md_image(plot) + "\n" for plot in p.distributions]
    if p.unplotted:
        m.append(f"Not plotted ({len(p.unplotted)}): " + ", ".join(map(md_code, p.unplotted)))
    m += ["", f"## Target: {md_code(p.target)}", ""]
    if p.target_missing:
        m += [f"{number(p.target_missing)} rows have no target value.", ""]
    if p.target_counts:
        m.append(
            md_table(
                ["class", "rows", "share"],
                [[md_code(k), number(n), percent(100 * s)] for k, n, s in p.target_counts],
                right={1, 2},
            )
        )
    if p.target_stats:
        m.append(
            md_table(
                list(p.target_stats),
                [[number(v) for v in p.target_stats.values()]],
                right=set(range(len(p.target_stats))),
            )
        )
    if p.target_plot:
        m += ["", md_image(p.target_plot)]
    m += ["", "## Duplicate rows", ""]
    m.append(duplicates_note(p))
    if p.duplicate_examples:
        m += [
            "",
            md_table(
                ["row", "same as row"],
                [[str(r), str(f)] for r, f in p.duplicate_examples],
                right={0, 1},
            ),
            "",
            "Row numbers count from 0 in the profiled rows.",
        ]
    m += ["", "## Leakage suspects", ""]
    if p.leakage_note:
        m.append(f"Not scored: {md_text(p.leakage_note)}.")
    else:
        m += [md_text(leakage_intro(p)), ""]
        if p.suspects:
            m.append(
                md_table(
                    ["column", "score"],
                    [[md_code(c), f"{s:.4f}"] for c, s in p.suspects],
                    right={1},
                )
            )
        else:
            m.append("No leakage suspects.")
        m += ["", "### Top single-column scores", ""]
        m.append(
            md_table(
                ["column", "score", "suspect"],
                [[md_code(c), score, suspect] for c, score, suspect in score_rows(p)],
                right={1},
            )
        )
    return "\n".join(m) + "\n"
