"""The data profile report of `python -m automl.ingest`: profile.html (with PNG plots in
plots/) and profile.md, written side by side so that a crash leaves no half report.

Contents: a summary, the columns (kind, why, missing %, distinct values, dropped or not),
missingness, one distribution plot per column, the target's balance, duplicate rows and
leakage suspects (single columns that nearly predict the target on their own)."""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    from automl.ingest.infer import ColumnKind

DROPPED_KINDS = ("identifier", "constant", "text")
NUMERIC_KINDS = ("numeric", "integer")
TOP_CATEGORIES = 20
MAX_BAR_COLUMNS = 60  # the missingness chart shows at most this many columns
LEAKAGE_ROWS = 20_000
LEAKAGE_FOLDS = 3
TOP_SCORES = 10
DUPLICATE_EXAMPLES = 5
DPI = 80
OWN_PLOTS = re.compile(r"^(missingness|target|dist-\d{3}-[A-Za-z0-9_-]*)\.png$")


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
class Plot:
    file: str  # relative to the report: plots/<name>.png
    caption: str
    width: int = 0
    height: int = 0


@dataclass
class Profile:
    """Everything the report says, before it is rendered to HTML or Markdown."""

    title: str
    target: str
    task: str
    rows: int
    total_rows: int | None
    columns: list[ColumnInfo]
    missingness_plot: Plot | None = None
    distributions: list[Plot] = field(default_factory=list)
    unplotted: list[str] = field(default_factory=list)
    target_counts: list[tuple[str, int, float]] = field(default_factory=list)  # label, n, share
    target_stats: dict[str, float] = field(default_factory=dict)
    target_missing: int = 0
    target_plot: Plot | None = None
    duplicates: int = 0
    duplicate_examples: list[tuple[int, int]] = field(default_factory=list)  # (row, first seen)
    leakage_threshold: float = 0.98
    leakage_metric: str = ""
    leakage_rows: int = 0
    leakage_note: str = ""
    scores: list[tuple[str, float]] = field(default_factory=list)  # best first
    seed: int = 0

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
) -> dict[str, Path]:
    """Write profile.html (with PNG plots beside it in out_dir/plots/) and profile.md;
    return {"html": ..., "markdown": ...}.

    ``frame`` is the canonical typed data (possibly the first rows or a sample of a larger
    file: ``total_rows`` is then the size of the whole file, for the report to say so).
    Everything is written in a temporary folder beside ``out_dir`` and moved into place
    at the end, the HTML last.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        (staging / "plots").mkdir()
        profile = build_profile(
            frame,
            kinds,
            target,
            task,
            staging / "plots",
            title,
            leakage_threshold=leakage_threshold,
            max_plots=max_plots,
            seed=seed,
            total_rows=total_rows,
        )
        (staging / "profile.md").write_text(render_markdown(profile), encoding="utf-8")
        (staging / "profile.html").write_text(render_html(profile), encoding="utf-8")
        publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"html": out_dir / "profile.html", "markdown": out_dir / "profile.md"}


def publish(staging: Path, out_dir: Path) -> None:
    """Move a finished report from ``staging`` to ``out_dir``: one rename when ``out_dir``
    is new, else file by file (plots, then Markdown, then HTML), each an atomic replace;
    plots of an earlier report that the new one no longer uses are removed."""
    try:
        staging.rename(out_dir)
        return
    except OSError:
        if not out_dir.is_dir():
            raise
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    new = {p.name for p in (staging / "plots").iterdir()}
    for name in sorted(new):
        os.replace(staging / "plots" / name, plots / name)
    os.replace(staging / "profile.md", out_dir / "profile.md")
    os.replace(staging / "profile.html", out_dir / "profile.html")
    for old in plots.iterdir():
        if old.name not in new and OWN_PLOTS.match(old.name):
            old.unlink(missing_ok=True)


def build_profile(
    frame: pd.DataFrame,
    kinds: dict[str, ColumnKind],
    target: str,
    task: str,
    plot_dir: Path,
    title: str,
    leakage_threshold: float = 0.98,
    max_plots: int = 40,
    seed: int = 0,
    total_rows: int | None = None,
) -> Profile:
    """The findings of the report, with its plots written to ``plot_dir``."""
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
        dropped = col != target and kind in DROPPED_KINDS
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
    profile = Profile(
        title=title,
        target=target,
        task=task,
        rows=len(frame),
        total_rows=total_rows,
        columns=columns,
        leakage_threshold=leakage_threshold,
        seed=seed,
    )
    profile.missingness_plot = missingness_plot(columns, plot_dir)
    plot_distributions(profile, frame, kind_of, plot_dir, max_plots)
    target_balance(profile, frame[target], plot_dir)
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


def label(value: Any, width: int = 30) -> str:
    """A plot label: one line, at most ``width`` characters, no mathtext."""
    text = " ".join(str(value).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("$", r"\$")


def save(fig: Figure, path: Path, caption: str) -> Plot:
    """Save ``fig`` (a pyplot-free Figure: nothing to close) as a PNG."""
    fig.savefig(path, dpi=DPI)
    fig.clear()
    with path.open("rb") as f:
        head = f.read(24)
    width, height = struct.unpack(">II", head[16:24])
    return Plot(f"plots/{path.name}", caption, width, height)


def margins(fig: Figure, left: float, bottom: float, top: float = 0.4, right: float = 0.25):
    """Fixed margins in inches (much faster than tight_layout)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )


def bar_chart(labels: list[str], values: list[float], xlabel: str, title: str) -> Figure:
    """Horizontal bars, first label on top."""
    fig = Figure(figsize=(6.4, 0.26 * len(labels) + 1.4))
    ax = fig.add_subplot()
    positions = np.arange(len(labels))
    ax.barh(positions, values, color="#4c72b0")
    texts = [label(v) for v in labels]
    ax.set_yticks(positions, texts, fontsize=8)
    ax.invert_yaxis()
    longest = max((len(t) for t in texts), default=1)
    margins(fig, left=min(2.4, 0.3 + 0.065 * longest), bottom=0.55)
    ax.set_xlabel(xlabel)
    ax.set_title(label(title, 70))
    return fig


def missingness_plot(columns: list[ColumnInfo], plot_dir: Path) -> Plot:
    shown = sorted(columns, key=lambda c: -c.missing_pct)[:MAX_BAR_COLUMNS]
    shown = [c for c in columns if c in shown]  # keep the data's column order
    fig = bar_chart(
        [c.name for c in shown], [c.missing_pct for c in shown], "missing %", "Missing values"
    )
    fig.axes[0].set_xlim(0, 100)
    caption = "Missing % per column"
    if len(shown) < len(columns):
        caption += f" (the {len(shown)} columns with the most missing values)"
    return save(fig, plot_dir / "missingness.png", caption)


def plot_distributions(
    profile: Profile,
    frame: pd.DataFrame,
    kind_of: dict[str, tuple[str, str]],
    plot_dir: Path,
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
        path = plot_dir / f"dist-{i:03d}-{slug}.png"
        fig, caption = distribution_figure(col, kind, series)
        profile.distributions.append(save(fig, path, caption))


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
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    distinct_values = np.unique(values) if values.size else values
    bins = min(30, max(len(distinct_values), 1))
    ax.hist(values, bins=bins, color="#4c72b0")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(label(title, 70))
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
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    ax.bar(np.arange(len(counts)), counts.to_numpy(), color="#4c72b0", width=0.9)
    step = max(1, len(counts) // 10)
    ticks = np.arange(0, len(counts), step)
    ax.set_xticks(ticks, [str(counts.index[t]) for t in ticks], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("rows")
    ax.set_title(label(col, 70))
    margins(fig, left=0.8, bottom=0.75)
    return fig, f"{col}: rows per {unit}"


# --------------------------------------------------------------------------- sections


def target_balance(profile: Profile, target: pd.Series, plot_dir: Path) -> None:
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
        profile.target_plot = save(fig, plot_dir / "target.png", "Target histogram")
        return
    counts = present.astype(str).value_counts()
    profile.target_counts = [(str(k), int(n), float(n) / len(present)) for k, n in counts.items()]
    shown = counts.iloc[:MAX_BAR_COLUMNS]
    fig = bar_chart(list(shown.index), list(shown.to_numpy()), "rows", f"{profile.target}")
    caption = "Rows per class" + (
        f" (the {len(shown)} largest classes)" if len(shown) < len(counts) else ""
    )
    profile.target_plot = save(fig, plot_dir / "target.png", caption)


def duplicate_rows(profile: Profile, frame: pd.DataFrame) -> None:
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
    profile: Profile,
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


def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_pct(x: float) -> str:
    return f"{x:.1f}%" if x == 0 or x >= 0.1 else f"{x:.2f}%"


def rows_note(p: Profile) -> str:
    if p.total_rows is not None and p.total_rows > p.rows:
        return (
            f"This profile covers {fmt_int(p.rows)} of the data's {fmt_int(p.total_rows)} "
            "rows (a sample); counts and shares below are over those rows."
        )
    if p.total_rows is not None:
        return f"This profile covers all {fmt_int(p.rows)} rows of the data."
    return f"This profile covers {fmt_int(p.rows)} rows."


def summary_rows(p: Profile) -> list[tuple[str, str]]:
    features = sum(c.role == "feature" for c in p.columns)
    dropped = sum(c.dropped for c in p.columns)
    rows = fmt_int(p.rows)
    if p.total_rows is not None and p.total_rows > p.rows:
        rows += f" of {fmt_int(p.total_rows)} (a sample)"
    return [
        ("Rows profiled", rows),
        ("Columns", fmt_int(len(p.columns))),
        ("Task", p.task),
        ("Target", p.target),
        ("Feature columns", fmt_int(features)),
        ("Dropped from features", fmt_int(dropped)),
        ("Duplicate rows", f"{fmt_int(p.duplicates)} ({fmt_pct(dup_share(p))})"),
        ("Leakage suspects", fmt_int(len(p.suspects))),
    ]


def missing_cells_pct(p: Profile) -> float:
    cells = p.rows * len(p.columns)
    return 100.0 * sum(c.missing for c in p.columns) / cells if cells else 0.0


def dup_share(p: Profile) -> float:
    return 100.0 * p.duplicates / p.rows if p.rows else 0.0


def leakage_intro(p: Profile) -> str:
    return (
        f"Each feature alone, scored by a depth-4 decision tree with {LEAKAGE_FOLDS}-fold "
        f"cross-validation ({p.leakage_metric}) on {fmt_int(p.leakage_rows)} rows "
        f"(sampled with seed {p.seed}). A column scoring at least {p.leakage_threshold:g} "
        "on its own nearly predicts the target: check that it is known before the outcome."
    )


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
  max-width: 1100px; padding: 1rem 2rem; color: #222; line-height: 1.4; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #4c72b0; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
nav a { margin-right: .8rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f0f3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.dropped td { color: #777; }
tr.target td { font-weight: 600; }
.warn { color: #a40000; font-weight: 600; }
.ok { color: #1a7f37; }
.note { color: #555; font-size: .9rem; }
code { background: #f4f4f4; padding: 0 .2rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { font-size: .8rem; color: #555; max-width: 512px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def html_table(
    headers: list[str],
    rows: list[list[str]],
    numeric: set[int] = frozenset(),
    classes: list[str] | None = None,
    table_id: str = "",
) -> str:
    """A table of already escaped cells."""
    attr = f' id="{table_id}"' if table_id else ""
    out = [f"<table{attr}>", "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if j in numeric else f"<td>{c}</td>"
            for j, c in enumerate(row)
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def html_figure(plot: Plot) -> str:
    size = f' width="{plot.width}" height="{plot.height}"' if plot.width else ""
    return (
        f'<figure><img src="{esc(quote(plot.file))}" alt="{esc(plot.caption)}"{size}>'
        f"<figcaption>{esc(plot.caption)}</figcaption></figure>"
    )


def render_html(p: Profile) -> str:
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>Data profile: {esc(p.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>Data profile: {esc(p.title)}</h1>",
        '<nav><a href="#summary">Summary</a><a href="#columns">Columns</a>'
        '<a href="#missingness">Missingness</a><a href="#distributions">Distributions</a>'
        '<a href="#target">Target</a><a href="#duplicates">Duplicates</a>'
        '<a href="#leakage">Leakage</a></nav>',
        '<section id="summary">',
        "<h2>Summary</h2>",
        f'<p class="note">{esc(rows_note(p))}</p>',
        '<table id="summary-table"><tbody>',
    ]
    h += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in summary_rows(p)]
    h += ["</tbody></table>", "</section>"]

    h += ['<section id="columns">', "<h2>Columns</h2>"]
    rows, classes = [], []
    for c in p.columns:
        dropped = "target" if c.role == "target" else "yes" if c.dropped else "no"
        rows.append(
            [
                f"<code>{esc(c.name)}</code>",
                esc(c.kind),
                esc(c.reason),
                esc(fmt_pct(c.missing_pct)),
                esc(fmt_int(c.missing)),
                esc(fmt_int(c.distinct)),
                esc(dropped),
            ]
        )
        classes.append(c.role if c.role != "feature" else "")
    h.append(
        html_table(
            ["column", "kind", "why", "missing %", "missing", "distinct", "dropped"],
            rows,
            numeric={3, 4, 5},
            classes=classes,
            table_id="columns-table",
        )
    )
    h.append(
        f'<p class="note">Kinds {esc(", ".join(DROPPED_KINDS))} are kept in the data but '
        "dropped from the features.</p>"
    )
    h.append("</section>")

    h += ['<section id="missingness">', "<h2>Missingness</h2>"]
    incomplete = [c for c in p.columns if c.missing]
    if incomplete:
        h.append(
            f"<p>{len(incomplete)} of {len(p.columns)} columns have missing values; "
            f"{esc(fmt_pct(missing_cells_pct(p)))} of all cells are missing.</p>"
        )
    else:
        h.append('<p class="ok">No missing values.</p>')
    if p.missingness_plot:
        h.append(html_figure(p.missingness_plot))
    h.append("</section>")

    h += ['<section id="distributions">', "<h2>Distributions</h2>"]
    h.append(
        "<p>Histograms for numbers, the top "
        f"{TOP_CATEGORIES} values for categories, rows per day/month/year for dates.</p>"
    )
    h.append('<div class="plots">')
    h += [html_figure(plot) for plot in p.distributions]
    h.append("</div>")
    if p.unplotted:
        names = ", ".join(f"<code>{esc(n)}</code>" for n in p.unplotted)
        h.append(f'<p class="note">Not plotted ({len(p.unplotted)}): {names}.</p>')
    h.append("</section>")

    h += ['<section id="target">', f"<h2>Target: <code>{esc(p.target)}</code></h2>"]
    if p.target_missing:
        h.append(f'<p class="warn">{fmt_int(p.target_missing)} rows have no target value.</p>')
    if p.target_counts:
        h.append(
            html_table(
                ["class", "rows", "share"],
                [
                    [f"<code>{esc(k)}</code>", esc(fmt_int(n)), esc(fmt_pct(100 * s))]
                    for k, n, s in p.target_counts
                ],
                numeric={1, 2},
                table_id="target-table",
            )
        )
    if p.target_stats:
        h.append(
            html_table(
                list(p.target_stats),
                [[esc(f"{v:.4g}") for v in p.target_stats.values()]],
                numeric=set(range(len(p.target_stats))),
                table_id="target-table",
            )
        )
    if p.target_plot:
        h.append(html_figure(p.target_plot))
    h.append("</section>")

    h += ['<section id="duplicates">', "<h2>Duplicate rows</h2>"]
    if p.duplicates:
        h.append(
            f'<p class="warn" id="duplicate-count">{fmt_int(p.duplicates)} duplicate rows '
            f"({esc(fmt_pct(dup_share(p)))} of {fmt_int(p.rows)}): rows equal to an earlier "
            "row in every column.</p>"
        )
        h.append(
            html_table(
                ["row", "same as row"],
                [[str(r), str(f)] for r, f in p.duplicate_examples],
                numeric={0, 1},
                table_id="duplicate-examples",
            )
        )
        h.append('<p class="note">Row numbers count from 0 in the profiled rows.</p>')
    else:
        h.append('<p class="ok" id="duplicate-count">0 duplicate rows (0.0%).</p>')
    h.append("</section>")

    h += ['<section id="leakage">', "<h2>Leakage suspects</h2>"]
    if p.leakage_note:
        h.append(f'<p class="note">Not scored: {esc(p.leakage_note)}.</p>')
    else:
        h.append(f"<p>{esc(leakage_intro(p))}</p>")
        if p.suspects:
            h.append(
                html_table(
                    ["column", "score"],
                    [[f"<code>{esc(c)}</code>", f"{s:.4f}"] for c, s in p.suspects],
                    numeric={1},
                    classes=["warn"] * len(p.suspects),
                    table_id="leakage-suspects",
                )
            )
        else:
            h.append('<p class="ok" id="leakage-suspects">No leakage suspects.</p>')
        h.append("<h3>Top single-column scores</h3>")
        h.append(
            html_table(
                ["column", "score", "suspect"],
                [
                    [
                        f"<code>{esc(c)}</code>",
                        f"{s:.4f}",
                        "yes" if s >= p.leakage_threshold else "no",
                    ]
                    for c, s in p.scores[:TOP_SCORES]
                ],
                numeric={1},
                table_id="leakage-scores",
            )
        )
    h += ["</section>", "</body>", "</html>", ""]
    return "\n".join(h)


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


def md_image(plot: Plot) -> str:
    return f"![{md_text(plot.caption)}]({quote(plot.file)})"


def render_markdown(p: Profile) -> str:
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
            ["column", "kind", "why", "missing %", "missing", "distinct", "dropped"],
            [
                [
                    md_code(c.name),
                    c.kind,
                    md_text(c.reason),
                    fmt_pct(c.missing_pct),
                    fmt_int(c.missing),
                    fmt_int(c.distinct),
                    "target" if c.role == "target" else "yes" if c.dropped else "no",
                ]
                for c in p.columns
            ],
            right={3, 4, 5},
        )
    )
    m += [
        "",
        f"Kinds {', '.join(DROPPED_KINDS)} are kept in the data but dropped from the features.",
    ]
    m += ["", "## Missingness", ""]
    incomplete = [c for c in p.columns if c.missing]
    if incomplete:
        m.append(
            f"{len(incomplete)} of {len(p.columns)} columns have missing values; "
            f"{fmt_pct(missing_cells_pct(p))} of all cells are missing."
        )
    else:
        m.append("No missing values.")
    if p.missingness_plot:
        m += ["", md_image(p.missingness_plot)]
    m += ["", "## Distributions", ""]
    m += [md_image(plot) + "\n" for plot in p.distributions]
    if p.unplotted:
        m.append(f"Not plotted ({len(p.unplotted)}): " + ", ".join(map(md_code, p.unplotted)))
    m += ["", f"## Target: {md_code(p.target)}", ""]
    if p.target_missing:
        m += [f"{fmt_int(p.target_missing)} rows have no target value.", ""]
    if p.target_counts:
        m.append(
            md_table(
                ["class", "rows", "share"],
                [[md_code(k), fmt_int(n), fmt_pct(100 * s)] for k, n, s in p.target_counts],
                right={1, 2},
            )
        )
    if p.target_stats:
        m.append(
            md_table(
                list(p.target_stats),
                [[f"{v:.4g}" for v in p.target_stats.values()]],
                right=set(range(len(p.target_stats))),
            )
        )
    if p.target_plot:
        m += ["", md_image(p.target_plot)]
    m += ["", "## Duplicate rows", ""]
    m.append(
        f"{fmt_int(p.duplicates)} duplicate rows ({fmt_pct(dup_share(p))} of "
        f"{fmt_int(p.rows)}): rows equal to an earlier row in every column."
    )
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
                [
                    [md_code(c), f"{s:.4f}", "yes" if s >= p.leakage_threshold else "no"]
                    for c, s in p.scores[:TOP_SCORES]
                ],
                right={1},
            )
        )
    return "\n".join(m) + "\n"
