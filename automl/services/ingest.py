"""The ingest job: read in chunks, type every column, write the canonical copy, the data
set YAML with its inferred contract, the rejects and the profile report."""

from __future__ import annotations

import logging
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from automl.atomic import discard, publish, staged, temp_path, write_text
from automl.config import as_data, check_name, to_plain
from automl.data.bad_rows import FAIL, QUARANTINE, check_on_bad_rows
from automl.data.dataset import infer_task
from automl.errors import ConfigError, DataError
from automl.ingest.infer import ColumnKind, Limits, RunningStats, coerce, contract_columns
from automl.ingest.infer import infer_kinds as infer_all
from automl.io import read_chunks
from automl.redact import redact_text

log = logging.getLogger(__name__)
ARROW_TYPES = {
    "numeric": pa.float64(),
    "integer": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("ns"),
    "categorical": pa.string(),
    "text": pa.string(),
}
TRUTHY = ("1", "1.0", "yes", "y", "true", "t")


class CanonicalWriter:
    """The typed copy, written chunk by chunk to a temp file and renamed at the end (with
    the column types of ``schema``: Parquet stores them, JSON lines cannot)."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str) -> None:
        self.path, self.schema, self.fmt = path, schema, fmt
        self.tmp = temp_path(path)
        self.parquet = pq.ParquetWriter(self.tmp, schema) if fmt == "parquet" else None

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet is not None:
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            self.parquet.write_table(table)
        else:
            with self.tmp.open("a") as out:
                frame.to_json(out, orient="records", lines=True, date_format="iso")

    def commit(self) -> Path:
        if self.parquet is not None:
            self.parquet.close()
        return publish(self.tmp, self.path)

    def abort(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        discard(self.tmp)


def arrow_schema(kinds: dict[str, ColumnKind], sample: pd.DataFrame) -> pa.Schema:
    """Column types of the canonical copy (ids and constants keep their sample's type)."""
    fields = []
    for col, kind in kinds.items():
        numeric = pd.api.types.is_numeric_dtype(sample[col])
        kind_type = ARROW_TYPES.get(kind.kind, pa.float64() if numeric else pa.string())
        fields.append(pa.field(col, kind_type))
    return pa.schema(fields)


def target_kind(kind: ColumnKind, task: str) -> ColumnKind:
    """The target is never dropped; a classification target is categorical."""
    if kind.kind in ("constant",):
        raise DataError(f"target '{kind.name}' has a single value: nothing to predict")
    if task != "regression":
        return ColumnKind(kind.name, "categorical", "classification target")
    if kind.kind not in ("numeric", "integer"):
        raise DataError(
            f"target '{kind.name}' is {kind.kind} ({kind.reason}): not a number, "
            "so it cannot be a regression target"
        )
    return kind


def positive_class(classes: list[str], counts: pd.Series, declared: Any) -> str:
    """The declared positive class, else a truthy label, else the rarer class."""
    if declared is not None:
        if str(declared) not in classes:
            raise ConfigError(f"positive_class '{declared}' is not one of the classes {classes}")
        return str(declared)
    for label in classes:
        if label.lower() in TRUTHY:
            return label
    return str(counts.idxmin())


def first_rejects(reasons: pd.Series, chunk: pd.DataFrame) -> str:
    row = reasons[reasons != ""].index[0]
    return f"row {row}: {reasons[row]} (values: {chunk.loc[row].to_dict()})"


def check_columns(columns: list[str], source: str) -> None:
    """Column names become keys of the data set YAML: an empty (or blank) one is refused.

    Any other text is kept as it is (newlines, quotes, ``#``, ``${``...): it reaches the
    YAML only as data (see :func:`write_yaml`)."""
    for position, column in enumerate(columns, 1):
        if not column.strip():
            raise DataError(
                f"{source}: column {position} has an empty column name ({column!r}); name it "
                "in the file, or give all names with the reader option names"
            )


def ingest(cfg: Any) -> dict[str, Any]:
    """Run the ingest job described by ``cfg`` (conf/apps/ingest.yaml); returns a summary.

    The input is untrusted: its column names and values reach the data set YAML only as
    escaped data, ``name`` is checked before anything is written, and downloads and
    decompression stop at ``max_download_bytes`` / ``max_decompressed_bytes``."""
    from automl.ingest.readers import open_table

    started = time.perf_counter()
    check_name(cfg.name)
    on_bad_rows = check_on_bad_rows(cfg.on_bad_rows)
    if cfg.output_format not in ("parquet", "jsonl"):
        raise ConfigError(f"output_format must be parquet or jsonl, not '{cfg.output_format}'")
    conf_dir = Path(cfg.conf_dir).expanduser()
    table = open_table(
        cfg.input,
        cfg.formats,
        to_plain(cfg.read),
        cfg.paths.cache_dir,
        on_bad_rows,
        max_download_bytes=cfg.max_download_bytes,
        max_decompressed_bytes=cfg.max_decompressed_bytes,
    )
    sample = table.sample(cfg.sample_rows)
    sample.columns = [str(c) for c in sample.columns]
    check_columns(list(sample.columns), cfg.input)
    target = cfg.target
    if target not in sample.columns:
        raise DataError(
            f"target '{target}' is not a column of {cfg.input}; columns: "
            f"{', '.join(sample.columns)}"
        )
    limits = Limits(**to_plain(cfg.limits))
    kinds = infer_all(sample, limits)
    typed_sample = coerce(sample, kinds)[0]
    task = cfg.task or infer_task(typed_sample[target].dropna(), cfg.max_classes)
    kinds[target] = target_kind(kinds[target], task)
    dropped = {c: k for c, k in kinds.items() if k.kind in cfg.drop_kinds and c != target}
    for col, kind in kinds.items():
        note = "  -> dropped from features" if col in dropped else ""
        log.info("column %-28s %-12s %s%s", col, kind.kind, kind.reason, note)

    data_dir = conf_dir / "data"
    suffix = cfg.formats[cfg.output_format].suffixes[0]
    writer = CanonicalWriter(
        data_dir / f"{cfg.name}.{suffix}", arrow_schema(kinds, sample), cfg.output_format
    )
    rejects: list[pd.DataFrame] = []
    stats, counts = RunningStats(), {"read": 0, "written": 0, "rejected": 0}
    classes = pd.Series(dtype=float)
    progress = tqdm(
        desc=f"ingest {cfg.name}", unit=" rows", disable=not cfg.progress, mininterval=1.0
    )
    try:
        for chunk in table.chunks(cfg.chunk_size):
            chunk.columns = [str(c) for c in chunk.columns]
            typed, reasons = coerce(chunk, kinds)
            bad = (reasons != "").to_numpy()
            if bad.any():
                if on_bad_rows == FAIL:
                    raise DataError(
                        f"{cfg.input}: {first_rejects(reasons, chunk)}; set "
                        "on_bad_rows=quarantine to set such rows aside"
                    )
                if on_bad_rows == QUARANTINE:
                    rejects.append(chunk[bad].astype(str).assign(reason=reasons[bad]))
                typed = typed[~bad]
            counts["read"] += len(chunk)
            counts["rejected"] += int(bad.sum())
            counts["written"] += len(typed)
            stats.update(typed, kinds, cfg.contract.max_allowed)
            if task != "regression":
                classes = classes.add(typed[target].value_counts(), fill_value=0)
            writer.write(typed)
            progress.update(len(chunk))
        if counts["written"] == 0:
            raise DataError(f"{cfg.input}: no rows left to write (read {counts['read']})")
        data_path = writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()

    for bad_row in table.bad_rows:
        counts["rejected"] += 1
        if on_bad_rows == QUARANTINE:
            frame = pd.DataFrame(
                [{"raw": bad_row["raw"], "reason": bad_row["reason"]}], index=[bad_row["row"]]
            )
            rejects.append(frame)
    rejects_path = None
    if rejects:
        rejects_path = data_dir / f"{cfg.name}.rejects.csv"
        with staged(rejects_path) as tmp:
            pd.concat(rejects).rename_axis("row").to_csv(tmp)
    if counts["rejected"]:
        log.warning(
            "%s: %d row(s) rejected (%s)%s",
            cfg.input,
            counts["rejected"],
            on_bad_rows,
            f", see {rejects_path}" if rejects_path else "",
        )

    columns = contract_columns(
        kinds, stats, cfg.contract.range_margin, cfg.contract.max_allowed, target
    )
    for col in dropped:
        columns.pop(col)
    spec = dataset_spec(cfg, task, target, data_path, sorted(dropped), columns, stats, classes)
    yaml_path = write_yaml(conf_dir / "dataset" / f"{cfg.name}.yaml", spec)

    report = {}
    if cfg.report.enabled:
        from automl.ingest.profile_report import write_report

        report_frame = read_back(data_path, cfg.formats, cfg.report.max_rows)
        report = write_report(
            report_frame,
            kinds,
            target,
            task,
            conf_dir / "reports" / cfg.name,
            title=f"{cfg.name}: {redact_text(cfg.input)}",
            leakage_threshold=cfg.report.leakage_threshold,
            max_plots=cfg.report.max_plots,
            dropped_kinds=tuple(cfg.drop_kinds),
        )
    seconds = time.perf_counter() - started
    summary = {
        **counts,
        "seconds": round(seconds, 2),
        "rows_per_second": round(counts["read"] / max(seconds, 1e-9)),
        "dataset": str(yaml_path),
        "data": str(data_path),
        "rejects": str(rejects_path) if rejects_path else None,
        "report": {k: str(v) for k, v in report.items()},
        "task": task,
    }
    log.info(
        "ingested %d rows (%d written, %d rejected) in %.1fs -> %s",
        counts["read"],
        counts["written"],
        counts["rejected"],
        seconds,
        yaml_path,
    )
    log.info("train with: python -m automl --config-dir %s dataset=%s", conf_dir, cfg.name)
    return summary


def read_back(path: Path, formats: Any, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of the canonical copy (read with its format's ``stream``)."""
    with closing(read_chunks(path, formats, rows)) as chunks:
        return next(chunks)


def dataset_spec(
    cfg: Any,
    task: str,
    target: str,
    data_path: Path,
    dropped: list[str],
    columns: dict[str, dict],
    stats: RunningStats,
    classes: pd.Series,
) -> dict[str, Any]:
    """The data set YAML as a dict: the training job loads it unchanged."""
    reader = to_plain(cfg.formats[cfg.output_format].read)  # the format's pandas reader
    source = redact_text(cfg.input)
    spec: dict[str, Any] = {
        "name": cfg.name,
        "description": f"Ingested from {source} ({stats.rows} rows) by automl.ingest",
        "target": target,
        "task": task,
    }
    if task == "binary":
        counts = classes.rename(index=str)
        spec["positive_class"] = positive_class(sorted(counts.index), counts, cfg.positive_class)
    spec["source"] = {
        "_target_": "automl.data.sources.FileSource",
        "path": str(data_path.resolve()),
        "reader": reader,
    }
    spec["clean"] = {"drop": dropped}
    spec["contract"] = {
        "strict": False,
        "columns": {c: clean_numbers(v) for c, v in columns.items()},
    }
    return spec


def clean_numbers(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values (YAML has no numpy types), rounded ranges."""
    out = {}
    for key, value in spec.items():
        if isinstance(value, float | np.floating):
            value = float(round(float(value), 6))
        out[key] = value
    return out


def write_yaml(path: Path, spec: dict[str, Any]) -> Path:
    """Write the data set YAML atomically: the spec through ``yaml.safe_dump`` only, its
    strings escaped against interpolation, and a comment with no data in it (the column
    kinds are in the ingest log and the profile report)."""
    header = (
        "# Data set written by automl.ingest from an untrusted file: every value below is\n"
        "# data. The inferred column kinds are in the ingest log and the profile report.\n"
    )
    body = yaml.safe_dump(as_data(spec), sort_keys=False, allow_unicode=True, width=100)
    return write_text(path, header + body)
