"""Batch scoring on a Dask cluster: the ``dask`` engine (conf/common/engine/dask.yaml).

The client splits the input (a file, or a folder of files) into partitions of
``partition_chunks * chunk_size`` rows (``automl.io.partitions``: Parquet from its
footer, delimited text and JSON lines from one pass over its line ends; a file of
another format is one partition), reading no rows itself. Each partition is one task: a
worker reads it chunk by chunk and scores it with the single-process machinery
(``ChunkScorer``, ``Writer``, ``score_chunks``), writing ``part-NNNNN.parquet`` of the
output folder and, for the rows ``on_bad_rows`` quarantines, of the rejects folder. A
worker holds about one chunk at a time, and loads the model once (:func:`worker_model`:
``Model.load`` of the bundle the client pinned with its hashes, so a registry's checks
hold on every worker). Models whose contract has a unique column are refused: that
check spans the whole input, in order.

The first part with scored rows fixes the output's columns and types, as the first chunk
fixes a single file's, so partitions run one at a time until one has scored rows, then
all at once with its schema. Both folders are written under temp names beside their
paths and renamed into place at the end; on any failure (the first in input order is
raised, as one process would raise it) neither exists. Read back in part order, the
output is the single-process output, row for row and value for value.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from automl.atomic import discard, publish, temp_path
from automl.bundle.explain import Settings
from automl.bundle.model import Model, pin_model, read_manifest
from automl.bundle.registry import Registry
from automl.data.bad_rows import QUARANTINE
from automl.data.contract import Contract
from automl.errors import AutomlError, ConfigError
from automl.io import Partition, format_name, partitions, suffix_format
from automl.services.scoring import (
    BatchSummary,
    ChunkScorer,
    Writer,
    log_summary,
    one_thread_each,
    progress_bar,
    reason_counts,
    score_chunks,
    settings,
)

log = logging.getLogger(__name__)
PART = "part-{number:0{digits}d}.parquet"  # the files of an output or rejects folder


@dataclass(frozen=True)
class ModelPin:
    """The bundle every worker loads, pinned by the SHA-256 of its manifest and pipeline,
    with how it is prepared (hashable: the key of each worker's cached model)."""

    bundle: Path
    recorded: tuple[str, str]
    compiled: str  # the `compiled` config node as JSON
    explain: Settings | None


@dataclass(frozen=True)
class Job:
    """What every task of one scoring job shares: plain values, no registry or secrets."""

    model: ModelPin
    formats: dict[str, Any]
    chunk_size: int
    keep_columns: bool
    on_bad_rows: str
    output: Path  # the folders the parts go to (temp ones while the job runs)
    rejects: Path
    digits: int  # of the part numbers

    def part(self, number: int) -> str:
        return PART.format(number=number, digits=self.digits)


@dataclass(frozen=True)
class PartResult:
    """What a task did with its partition (small: it travels back to the client)."""

    rows: int
    scored: int
    rejected: int
    reasons: list[pd.Series]  # rejected rows per reason, per chunk
    model_status: str  # "compiled", or why the pipeline scores


LOADING = threading.Lock()  # a worker with several threads loads a model once


@lru_cache(maxsize=2)
def cached_model(pin: ModelPin) -> Model:
    """The pinned model, loaded and prepared (call :func:`worker_model`)."""
    model = Model.load(pin.bundle, pin.recorded)
    if pin.explain is not None:
        model.explainer(pin.explain)  # a bundle that cannot be explained fails here
    one_thread_each(model.pipeline)  # one model thread per task: a worker per core
    model.compile(json.loads(pin.compiled))
    return model


def worker_model(pin: ModelPin) -> Model:
    """The pinned model, loaded once per worker process (``Model.load`` refuses bytes that
    differ from the pinned hashes), predicting with one thread, compiled."""
    with LOADING:
        return cached_model(pin)


def score_part(job: Job, part: Partition, number: int, schemas: dict[str, Any]) -> PartResult:
    """The task: score one partition on a worker into part ``number`` of the job's temp
    folders, written with ``schemas`` ("output", "rejects") when an earlier part fixed
    them."""
    if not job.output.is_dir():  # the job failed meanwhile: its folders are gone
        raise AutomlError(f"scoring job of '{job.output}' was stopped")
    model = worker_model(job.model)
    scorer = ChunkScorer(model, job.keep_columns, job.on_bad_rows, job.model.explain)
    name = job.part(number)
    quarantine = job.on_bad_rows == QUARANTINE
    writer = Writer(
        job.output / name, job.rejects / name, job.formats, scorer, None, quarantine, schemas
    )
    try:
        with closing(part.chunks(job.formats, job.chunk_size)) as chunks:
            score_chunks(chunks, scorer, writer, n_jobs=1)
    except AutomlError as exc:  # its message says it all: the library errors behind it
        exc.__cause__ = exc.__context__ = None  # (e.g. Pandera's) need not travel
        raise
    return PartResult(
        writer.rows, writer.output.rows, writer.rejected, writer.reasons, model.compile_status
    )


@dataclass(frozen=True)
class DaskEngine:
    """Score on a Dask cluster: the scheduler at ``address``, or a ``LocalCluster`` of
    ``workers`` processes with ``threads_per_worker`` threads and ``memory_limit`` each
    (its dashboard at ``dashboard_address``); Dask's own messages in this process from
    ``log_level`` up."""

    address: str | None = None
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str | int | None = "2GiB"
    partition_chunks: int = 1
    connect_timeout: float = 10
    log_level: str = "WARNING"
    dashboard_address: str | None = ":0"

    def predict_file(self, cfg: Any) -> BatchSummary:
        """Score ``cfg.input`` into the folder ``cfg.output``; returns a summary."""
        chunk_size, _, on_bad_rows = settings(cfg)
        self.check()
        source = Path(cfg.input).expanduser()
        output, rejects = folders(cfg)
        pin = pin_model(cfg.model, Registry.at(cfg.registry))
        refuse_unique_columns(pin, cfg.model)
        explain = Settings.of(cfg.get("explainer")) if cfg.get("explain") else None
        compiled = OmegaConf.to_container(cfg.compiled, resolve=True) if cfg.get("compiled") else {}
        parts = partitions(source, cfg.formats, chunk_size * self.partition_chunks)
        job = Job(
            model=ModelPin(*pin, json.dumps(compiled, sort_keys=True), explain),
            formats=OmegaConf.to_container(cfg.formats, resolve=True),  # type: ignore[arg-type]
            chunk_size=chunk_size,
            keep_columns=bool(cfg.keep_columns),
            on_bad_rows=on_bad_rows,
            output=output,
            rejects=rejects,
            digits=max(5, len(str(len(parts) - 1))),
        )
        total = None if any(p.rows is None for p in parts) else sum(p.rows or 0 for p in parts)
        temps: list[Path] = []
        try:
            with self.client() as client, progress_bar(cfg, total) as bar:
                log.info(
                    "dask: %d partition(s) of up to %d rows on %s",
                    len(parts),
                    chunk_size * self.partition_chunks,
                    where(client),
                )
                temps += [temp_path(output, directory=True), temp_path(rejects, directory=True)]
                job = replace(job, output=temps[0], rejects=temps[1])
                started = time.perf_counter()
                results = run_parts(client, job, parts, bar)
            log.info("model %s: %s", cfg.model, results[0].model_status)
            rejected = publish_parts(job, results, output, rejects)
        except BaseException:
            for tmp in temps:  # once the cluster is closed: no task is left to write there
                discard(tmp)
            raise
        summary = BatchSummary(
            input=source,
            output=output,
            rejects=rejected,
            rows_read=sum(r.rows for r in results),
            rows_scored=sum(r.scored for r in results),
            rows_rejected=sum(r.rejected for r in results),
            seconds=round(time.perf_counter() - started, 3),
            reasons=reason_counts([s for r in results for s in r.reasons]),
        )
        log_summary(summary, cfg.model)
        return summary

    def check(self) -> None:
        """The engine's settings, each a ConfigError naming its key."""
        for key in ("workers", "threads_per_worker", "partition_chunks"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"engine.{key} must be at least 1, got {getattr(self, key)}")
        if float(self.connect_timeout) <= 0:
            raise ConfigError(f"engine.connect_timeout must be positive: {self.connect_timeout}")
        if str(self.log_level).upper() not in logging.getLevelNamesMapping():
            raise ConfigError(f"engine.log_level must be a logging level, not {self.log_level!r}")
        if isinstance(self.memory_limit, str) and self.memory_limit != "auto":
            from dask.utils import parse_bytes

            try:
                parse_bytes(self.memory_limit)
            except ValueError as exc:
                raise ConfigError(f"engine.memory_limit: {exc} (e.g. 2GiB, or auto)") from None

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A client of the scheduler at ``address``, or of a new LocalCluster (closed, its
        workers stopped, on exit)."""
        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(str(self.log_level).upper())
        if self.address:
            try:
                client = Client(
                    str(self.address), timeout=self.connect_timeout, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise AutomlError(
                    f"cannot reach the Dask scheduler at {self.address} (engine.address) "
                    f"within {self.connect_timeout} s: {exc}; start it "
                    "(`dask scheduler`), or set engine.address=null for a local cluster"
                ) from None
            with client:
                try:
                    client.wait_for_workers(1, timeout=self.connect_timeout)
                except TimeoutError:
                    raise AutomlError(
                        f"the Dask scheduler at {self.address} (engine.address) has no "
                        f"workers (none joined within {self.connect_timeout} s)"
                    ) from None
                yield client
            return
        with (
            LocalCluster(
                n_workers=int(self.workers),
                threads_per_worker=int(self.threads_per_worker),
                processes=True,
                memory_limit=self.memory_limit,
                dashboard_address=self.dashboard_address,
                silence_logs=logging.CRITICAL,  # in workers: their errors reach the client
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            yield client


def where(client: Any) -> str:
    """The cluster in words: its workers and scheduler."""
    workers = client.scheduler_info().get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{len(workers)} worker(s), {threads} thread(s) ({client.scheduler_info()['address']})"


def folders(cfg: Any) -> tuple[Path, Path]:
    """The output folder and the rejects folder (``cfg.rejects``, or ``<name>.rejects``
    beside the output, before its ``.parquet``), each new or an earlier run's."""
    output = Path(cfg.output).expanduser()
    named = suffix_format(output.suffix, cfg.formats) is not None
    stem, tail = (output.stem, output.suffix) if named else (output.name, "")
    rejects = output.with_name(f"{stem}.rejects{tail}")
    if cfg.get("rejects"):
        rejects = Path(cfg.rejects).expanduser()
    kind = format_name(Path(PART.format(number=0, digits=1)), cfg.formats)
    for key, path in (("output", output), ("rejects", rejects)):
        named = suffix_format(path.suffix, cfg.formats)
        if named not in (None, kind):
            raise ConfigError(
                f"{key}={path} names a {named} file, but engine=dask writes a folder of "
                f"{kind} parts: name a folder (e.g. '{path.with_suffix('')}')"
            )
        if path.exists() and not earlier_parts(path):
            raise ConfigError(
                f"{key}={path} exists and is not an earlier run's folder of part-*.parquet "
                "files: engine=dask replaces only those; choose another path"
            )
    if output.resolve() == rejects.resolve():
        raise ConfigError(f"rejects and output are the same folder: '{output}'")
    return output, rejects


def earlier_parts(path: Path) -> bool:
    """Whether ``path`` is a folder of part files (an earlier run's output) only."""
    if not path.is_dir() or path.is_symlink():
        return False
    return all(f.is_file() and f.name.startswith("part-") for f in path.iterdir())


def refuse_unique_columns(pin: tuple[Path, tuple[str, str]], ref: Any) -> None:
    """A ConfigError when the model's contract has a unique column: duplicates are found
    across the whole input in order, by engine=local only (the manifest is read, nothing
    unpickled)."""
    bundle, recorded = pin
    manifest = read_manifest(bundle, recorded[0])
    contract = Contract.from_config(manifest["contract"]).without(manifest["target"])
    unique = [c for c, spec in contract.columns.items() if spec.unique]
    if unique:
        raise ConfigError(
            f"model {ref}: its contract has unique column(s) {', '.join(unique)}, checked "
            "across the whole input in order: score it with engine=local"
        )


def run_parts(client: Any, job: Job, parts: list[Partition], bar: Any) -> list[PartResult]:
    """Every partition's result, in input order: one at a time until a part has scored
    rows (its schemas fix the others'), then the rest at once. The first failure in input
    order is raised once the partitions before it are done; later ones are cancelled."""
    from distributed import as_completed

    results: list[PartResult] = []
    schemas: dict[str, Any] = {}
    while len(results) < len(parts) and "output" not in schemas:
        number = len(results)
        future = client.submit(score_part, job, parts[number], number, schemas, pure=False)
        results.append(outcome(future, parts[number]))
        bar.update(results[-1].rows)
        schemas = part_schemas(job, number, results[-1], schemas)
    pending = {
        client.submit(score_part, job, parts[n], n, schemas, pure=False): n
        for n in range(len(results), len(parts))
    }
    done: dict[int, PartResult] = {}
    failed: dict[int, BaseException] = {}
    for future in as_completed(pending, loop=client.loop):
        number = pending[future]
        if future.status == "finished":
            done[number] = future.result()
            bar.update(done[number].rows)
        elif future.status == "error":
            failed[number] = future.exception()
            client.cancel([f for f, n in pending.items() if n > min(failed) and not f.done()])
    if failed:
        first = min(failed)
        raise readable(failed[first], parts[first])
    return results + [done[n] for n in sorted(done)]


def outcome(future: Any, part: Partition) -> PartResult:
    """A task's result, or its error raised (a dead worker's in words)."""
    try:
        return future.result()
    except Exception as exc:
        raise readable(exc, part) from None


def readable(exc: BaseException, part: Partition) -> BaseException:
    """``exc``, or for a worker that died on the partition an AutomlError saying so."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return AutomlError(
            f"Dask workers died scoring rows {part.start}.. of '{part.path}' (out of "
            "memory?): raise engine.memory_limit, or lower chunk_size"
        )
    return exc


def part_schemas(
    job: Job, number: int, result: PartResult, schemas: dict[str, Any]
) -> dict[str, Any]:
    """``schemas`` with those part ``number`` fixed: its output's when it has scored rows,
    its rejects' when it has some (each only if not fixed before)."""
    found = dict(schemas)
    if "output" not in found and result.scored:
        found["output"] = pq.read_schema(job.output / job.part(number))
    if "rejects" not in found and (job.rejects / job.part(number)).is_file():
        found["rejects"] = pq.read_schema(job.rejects / job.part(number))
    return found


def publish_parts(job: Job, results: list[PartResult], output: Path, rejects: Path) -> Path | None:
    """Rename the temp folders into place (the output last), once the parts without rows
    (all but the first when none has rows) and temp files of restarted tasks are gone; the
    rejects folder, or None when no row was quarantined (an earlier run's is removed)."""
    keep_empty = not any(r.scored for r in results)
    for number, result in enumerate(results):
        if not result.scored and (number or not keep_empty):
            (job.output / job.part(number)).unlink(missing_ok=True)
    for folder in (job.output, job.rejects):
        for leftover in folder.glob(".*"):
            discard(leftover)
    quarantined = None
    if any(job.rejects.iterdir()):
        quarantined = publish(job.rejects, rejects, replace=True)
    else:
        discard(job.rejects)
        if rejects.exists():
            log.info("removing '%s' (an earlier run's): no row was quarantined", rejects)
            shutil.rmtree(rejects)
    publish(job.output, output, replace=True)
    return quarantined
