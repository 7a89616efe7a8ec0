"""Score a file in chunks: read, check against the model's contract, predict, write.

The input is streamed ``chunk_size`` rows at a time (its format's ``stream`` in
``formats``). Each chunk is cleaned as in training and checked against the model's input
contract; rows that break it are handled as ``on_bad_rows`` says (``automl.data.bad_rows``:
quarantine: to the rejects file with a ``reason``; skip: dropped and counted; fail: the
job stops), the others are scored. ``n_jobs`` threads score chunks at once
(at most ``n_jobs + 1`` chunks in memory) and the results are written in input order
(the output format's ``append``). Output and rejects are written to temp files beside them
and renamed into place at the end; on any failure both are removed and no output exists.
With ``explain``, each scored row also gets its input columns' contributions
(``Model.explain``, settings from the ``explainer`` group).

That is the ``local`` engine (:class:`InProcess`); ``cfg.engine`` (the ``engine`` group)
chooses another, e.g. ``dask`` (``services/distributed_scoring.py``), which scores
partitions of the input on a cluster with the same :class:`ChunkScorer`, :class:`Writer`
and :func:`score_chunks`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from automl.bundle.explain import Settings
from automl.bundle.model import Model, load_model
from automl.bundle.registry import Registry
from automl.config import build
from automl.data.bad_rows import FAIL, QUARANTINE, check_on_bad_rows
from automl.data.dataset import clean
from automl.errors import ConfigError, ContractError
from automl.io import (
    StagedFile,
    count_rows,
    format_callable,
    format_name,
    read_chunks,
    split_suffix,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch scoring job did: every row read is either scored or rejected (and
    then quarantined in ``rejects``, or skipped)."""

    input: Path
    output: Path
    rejects: Path | None  # None when no row was quarantined (no rejects file is written)
    rows_read: int
    rows_scored: int
    rows_rejected: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)  # rejected rows per reason

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = round(self.rows_per_second, 1)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}

    def __str__(self) -> str:
        text = (
            f"read {self.rows_read} rows from {self.input}: {self.rows_scored} scored -> "
            f"{self.output}, {self.rows_rejected} rejected"
        )
        if self.rows_rejected:
            top = ", ".join(f"{why} ({n}x)" for why, n in list(self.reasons.items())[:5])
            text += f" -> {self.rejects or 'skipped'} ({top})"
        return f"{text}; {self.seconds:.2f} s, {self.rows_per_second:,.0f} rows/s"


@dataclass
class ScoredChunk:
    """A worker's result for one chunk: the output rows and the rejected ones."""

    rows: int
    scored: pd.DataFrame
    rejected: pd.DataFrame | None = None  # the rejected rows as read, with row and reason
    unique: dict[str, pd.Series] = field(default_factory=dict)  # scored rows' unique columns
    raw: pd.DataFrame | None = None  # scored rows as read (kept only for unique columns)


def free_name(name: str, taken: Any) -> str:
    """``name``, or ``_name``, ``__name``... when the input already has a column by it."""
    while name in taken:
        name = f"_{name}"
    return name


class ChunkScorer:
    """Cleans, checks and scores one chunk (thread-safe: it keeps no state per chunk).

    ``on_bad_rows`` (checked by the caller): with ``fail`` the first bad row raises;
    otherwise bad rows come back apart, with their reasons.
    """

    def __init__(
        self,
        model: Model,
        keep_columns: bool,
        on_bad_rows: str,
        explain: Settings | None = None,
    ) -> None:
        self.model = model
        self.explain = explain  # None: no contributions
        self.contract = model.input_contract
        self.clean_spec = model.manifest["clean"]
        self.keep_columns = keep_columns
        self.fail = on_bad_rows == FAIL
        self.required = [c for c, v in self.contract.columns.items() if v.required]
        self.unique = [c for c, v in self.contract.columns.items() if v.unique]
        columns = ["prediction"]
        dtypes: dict[str, Any] = {"prediction": object if model.classes else float}
        for c in model.classes or []:
            columns.append(f"proba_{c}")
            dtypes[f"proba_{c}"] = float
        if explain is not None:
            contributions = model.explanation_columns()
            columns += contributions
            dtypes.update(dict.fromkeys(contributions, float))
        self.no_scores = pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in columns})

    def check_columns(self, first: pd.DataFrame) -> None:
        """Fail, naming them, when the input lacks required columns (checked on the header)."""
        self.contract.check_columns(list(clean(first.head(0), self.clean_spec).columns))

    def split(self, raw: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.Series | None]:
        """The chunk's valid rows, typed by the contract, and the reasons of the others."""
        cleaned = clean(raw, self.clean_spec)
        # JSON lines: a key that no record of this chunk has is a missing value in each
        missing = [c for c in self.required if c not in cleaned.columns]
        if missing:
            cleaned = cleaned.assign(**dict.fromkeys(missing, np.nan))
        try:
            return self.contract.validate(cleaned), None
        except ContractError:
            if self.fail:
                raise
            reasons = self.contract.failing_rows(cleaned)
            bad = reasons.to_numpy() != ""
            if not bad.any():  # the contract fails, but no row can be blamed
                raise
        good = cleaned[~bad]
        return (self.contract.validate(good) if len(good) else None), reasons[bad]

    def __call__(self, raw: pd.DataFrame) -> ScoredChunk:
        typed, reasons = self.split(raw)
        kept = raw if reasons is None else raw.loc[typed.index if typed is not None else []]
        scored = self.no_scores if typed is None else self.score(typed)
        if self.keep_columns:
            scored = pd.concat([kept.drop(columns=scored.columns, errors="ignore"), scored], axis=1)
        result = ScoredChunk(rows=len(raw), scored=scored)
        if self.unique and typed is not None:
            result.unique = {c: typed[c] for c in self.unique if c in typed.columns}
            result.raw = kept
        if reasons is not None:
            result.rejected = rejected_rows(raw.loc[reasons.index], reasons)
        return result

    def score(self, typed: pd.DataFrame) -> pd.DataFrame:
        """Predictions for valid rows, with their contributions when asked."""
        scored = self.model.score_valid(typed)
        if self.explain is None:
            return scored
        return pd.concat([scored, self.model.explain_valid(typed, self.explain)], axis=1)


def rejected_rows(raw: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """Rejected rows as read, values as text (a bad value may not fit the column's type),
    with their row number in the input (from 0) and the reason."""
    out = raw.astype("string")
    out[free_name("row", raw.columns)] = raw.index.to_numpy()
    out[free_name("reason", raw.columns)] = reasons.to_numpy()
    return out


class Writer:
    """Writes scored chunks in order to the output; rejected rows are counted, and written
    to the rejects file when ``quarantine``."""

    def __init__(
        self,
        output: Path,
        rejects: Path,
        formats: Any,
        scorer: ChunkScorer,
        bar: tqdm | None = None,
        quarantine: bool = True,
        schemas: Mapping[str, Any] | None = None,
    ) -> None:
        # schemas: the Arrow schemas ("output", "rejects") to write with, when this file is
        # one part of a folder whose first part fixed them
        self.schemas = dict(schemas or {})
        self.output = StagedFile(output, formats, **self.schema("output"))
        self.rejects_path = rejects
        self.quarantine = quarantine
        self.rejected = 0
        self.formats = formats
        self.rejects: StagedFile | None = None
        self.scorer = scorer
        self.bar = bar
        self.columns = self.names("output")
        self.reject_columns = self.names("rejects")
        self.seen: dict[str, set[Any]] = {c: set() for c in scorer.unique}
        self.reasons: list[pd.Series] = []
        self.rows = 0

    def schema(self, which: str) -> dict[str, Any]:
        """The appender's ``schema`` option for the output or rejects (none: {})."""
        return {"schema": self.schemas[which]} if which in self.schemas else {}

    def names(self, which: str) -> pd.Index | None:
        """The columns of the given schema (None: the first chunk's fix them)."""
        return pd.Index(self.schemas[which].names) if which in self.schemas else None

    def write(self, chunk: ScoredChunk) -> None:
        scored, rejected = chunk.scored, chunk.rejected
        if chunk.unique:
            scored, rejected = self.check_unique(chunk)
        self.columns = conform(self.columns, scored, "output")
        self.output.write(scored.reindex(columns=self.columns))
        if rejected is not None and len(rejected):
            self.rejected += len(rejected)
            if self.quarantine:
                if self.rejects is None:
                    self.rejects = StagedFile(
                        self.rejects_path, self.formats, **self.schema("rejects")
                    )
                self.reject_columns = conform(self.reject_columns, rejected, "rejects")
                self.rejects.write(rejected.reindex(columns=self.reject_columns))
            self.reasons.append(rejected.iloc[:, -1].str.split("; ").explode().value_counts())
        self.rows += chunk.rows
        if self.bar is not None:
            self.bar.update(chunk.rows)

    def check_unique(self, chunk: ScoredChunk) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Rows whose unique-column value an earlier chunk had are rejected too."""
        dup = pd.Series("", index=chunk.scored.index, dtype=object)
        for col, values in chunk.unique.items():
            seen = values.isin(self.seen[col]) & values.notna()
            why = f"{col}: duplicate value in a unique column (in an earlier chunk)"
            dup[seen] = np.where(dup[seen] == "", why, dup[seen] + "; " + why)
            self.seen[col].update(values[~seen].dropna().tolist())
        bad = dup.to_numpy() != ""
        if not bad.any():
            return chunk.scored, chunk.rejected
        if self.scorer.fail:
            rows = dup.index[bad].tolist()[:5]
            raise ContractError(f"{self.scorer.contract.name}: {dup[bad].iloc[0]} at rows {rows}")
        assert chunk.raw is not None
        more = rejected_rows(chunk.raw[bad], dup[bad])
        rejected = more if chunk.rejected is None else pd.concat([chunk.rejected, more])
        return chunk.scored[~bad], rejected.sort_index()

    def commit(self) -> Path | None:
        """Rename the temp files into place (the output last); the rejects path or None."""
        rejects = None
        if self.rejects is not None:
            rejects = self.rejects.commit()
        elif self.rejects_path.exists():
            log.info("removing '%s' (an earlier run's): no row was quarantined", self.rejects_path)
            self.rejects_path.unlink()
        self.output.commit()
        return rejects

    def discard(self) -> None:
        self.output.discard()
        if self.rejects is not None:
            self.rejects.discard()

    def reason_counts(self) -> dict[str, int]:
        return reason_counts(self.reasons)


def reason_counts(reasons: list[pd.Series]) -> dict[str, int]:
    """Rejected rows per reason, most frequent first, from per-chunk counts."""
    if not reasons:
        return {}
    counts = pd.concat(reasons).groupby(level=0).sum().sort_values(ascending=False)
    return {str(k): int(v) for k, v in counts.items()}


def conform(columns: pd.Index | None, frame: pd.DataFrame, what: str) -> pd.Index:
    """The first chunk's columns fix the file's; a column that appears later (in JSON
    lines, a key the first chunk lacks) cannot be added to what was written: say so."""
    if columns is None:
        return frame.columns
    if not frame.columns.equals(columns):
        extra = frame.columns.difference(columns)
        if len(extra):
            log.warning(
                "%s: column(s) %s first seen after the first chunk are not written",
                what,
                ", ".join(map(str, extra)),
            )
    return columns


def one_thread_each(estimator: Any) -> None:
    """Make every estimator inside ``estimator`` predict with one thread (``n_jobs=1``).

    With ``n_jobs`` chunks scored at once, one thread per chunk was faster than one chunk
    at a time with the model's own threads (LightGBM on adult, 2 cores: bench/
    score_at_scale.py): a chunk's Python work (cleaning, the contract, the feature step)
    then overlaps another chunk's prediction, without more threads than cores.
    """
    stack = [estimator]
    while stack:
        est = stack.pop()
        stack.extend(step for _, step in getattr(est, "steps", []))  # a Pipeline
        # a wrapper such as EarlyStopping, or a target transform
        stack.extend(
            inner
            for inner in (getattr(est, "estimator_", None), getattr(est, "regressor_", None))
            if inner is not None
        )
        if hasattr(est, "get_params") and "n_jobs" in est.get_params(deep=False):
            est.set_params(n_jobs=1)


def settings(cfg: Any) -> tuple[int, int, str]:
    """``chunk_size``, ``n_jobs`` and ``on_bad_rows``, checked."""
    chunk_size, n_jobs = int(cfg.chunk_size), int(cfg.n_jobs)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}")
    if n_jobs < 1:
        raise ConfigError(f"n_jobs must be at least 1, got {n_jobs}")
    return chunk_size, n_jobs, check_on_bad_rows(cfg.on_bad_rows)


def rejects_path(cfg: Any, output: Path) -> Path:
    """``cfg.rejects``, or ``<output name>.rejects.<output suffix>`` beside the output."""
    if cfg.get("rejects"):
        path = Path(cfg.rejects).expanduser()
        format_name(path, cfg.formats)  # an unknown format fails now, before any work
    else:
        stem, tail = split_suffix(output, cfg.formats)
        path = output.with_name(f"{stem}.rejects{tail}")
    if path.resolve() == output.resolve():
        raise ConfigError(f"rejects and output are the same file: '{path}'")
    return path


def score_chunks(
    chunks: Iterator[pd.DataFrame], scorer: ChunkScorer, writer: Writer, n_jobs: int
) -> Path | None:
    """Score ``chunks`` with ``n_jobs`` threads (at most ``n_jobs + 1`` chunks in memory),
    write them in order and commit; the rejects path, or None. The first chunk's columns
    are checked first; on any failure the writer's files are discarded and the error
    raised."""
    try:
        with ThreadPoolExecutor(n_jobs, thread_name_prefix="automl-score") as pool:
            pending: deque[Future[ScoredChunk]] = deque()
            try:
                for i, chunk in enumerate(chunks):
                    if i == 0:
                        scorer.check_columns(chunk)  # before any output is written
                    pending.append(pool.submit(scorer, chunk))
                    while len(pending) > n_jobs:  # n_jobs scoring + 1 being read
                        writer.write(pending.popleft().result())
                while pending:
                    writer.write(pending.popleft().result())
            finally:
                for future in pending:
                    future.cancel()
        return writer.commit()
    except BaseException:
        writer.discard()
        raise


def log_summary(summary: BatchSummary, model: Any) -> None:
    """The job's last log lines: rows rejected and where they went, then the summary."""
    if summary.rows_rejected:
        where = (
            f"written to {summary.rejects}"
            if summary.rejects is not None
            else "skipped (on_bad_rows=skip)"
        )
        log.warning("%d rows break the contract, %s", summary.rows_rejected, where)
    log.info("%s (model %s)", summary, model)


class InProcess:
    """The ``local`` engine (conf/common/engine/local.yaml): the file read in order in this
    process, ``n_jobs`` chunks scored at once by threads."""

    def predict_file(self, cfg: Any) -> BatchSummary:
        chunk_size, n_jobs, on_bad_rows = settings(cfg)
        source, output = Path(cfg.input).expanduser(), Path(cfg.output).expanduser()
        quarantine = on_bad_rows == QUARANTINE
        rejects = rejects_path(cfg, output)
        for path in [output, rejects] if quarantine else [output]:  # writable: checked now
            format_callable(cfg.formats, format_name(path, cfg.formats), "append")
        model = load_model(cfg.model, Registry.at(cfg.registry))
        explain = Settings.of(cfg.get("explainer")) if cfg.get("explain") else None
        if explain is not None:
            model.explainer(explain)  # a bundle that cannot be explained fails before output
        if n_jobs > 1:
            one_thread_each(model.pipeline)
        log.info("model %s: %s", cfg.model, model.compile(cfg.get("compiled")))
        started = time.perf_counter()
        scorer = ChunkScorer(model, bool(cfg.keep_columns), on_bad_rows, explain)
        with (
            closing(read_chunks(source, cfg.formats, chunk_size)) as chunks,
            progress_bar(cfg, count_rows(source, cfg.formats)) as bar,
        ):
            writer = Writer(output, rejects, cfg.formats, scorer, bar, quarantine)
            rejected = score_chunks(chunks, scorer, writer, n_jobs)
        summary = BatchSummary(
            input=source,
            output=output,
            rejects=rejected,
            rows_read=writer.rows,
            rows_scored=writer.output.rows,
            rows_rejected=writer.rejected,
            seconds=round(time.perf_counter() - started, 3),
            reasons=writer.reason_counts(),
        )
        log_summary(summary, cfg.model)
        return summary


def progress_bar(cfg: Any, total: int | None) -> tqdm:
    """A bar of rows scored on stderr (shown only on a terminal, and unless ``progress``
    is false)."""
    show = bool(cfg.get("progress", True)) and sys.stderr.isatty()
    return tqdm(
        total=total, unit="rows", unit_scale=True, desc="scoring", file=sys.stderr, disable=not show
    )


def predict_file(cfg: Any) -> BatchSummary:
    """Score ``cfg.input`` with the model at ``cfg.model`` on ``cfg.engine`` (the ``engine``
    group: in this process by default); returns a summary."""
    engine = build(cfg.engine) if cfg.get("engine") else InProcess()
    return engine.predict_file(cfg)
