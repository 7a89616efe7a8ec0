"""Benchmark: the building blocks of a scaled-out deployment, on PostgreSQL.

- **Shared search:** 1, 2 and 4 processes (standing in for machines) search one
  ``model=auto`` study in PostgreSQL at once (breast_cancer, linear and a 50-tree LightGBM,
  ``search.n_trials`` each): trials/s of the whole study, from the trials' own start and
  finish times (process start-up left out).
- **Registrations:** 1 and 4 processes registering versions into one registry database
  (SQLite file, then PostgreSQL): registrations/s.

Needs a PostgreSQL server whose role may create databases: ``make postgres`` (as root), or
``AUTOML_BENCH_POSTGRES=postgresql+psycopg://user:pw@host:5432/postgres``. Each part makes
a database of its own and drops it. Figures are printed, never asserted.

    .venv/bin/python bench/scale_out.py [--trials 6] [--processes 1 2 4] [--registrations 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
SERVER = os.environ.get(
    "AUTOML_BENCH_POSTGRES", "postgresql+psycopg://automl_test:automl_test@127.0.0.1:5432/postgres"
)


@contextmanager
def database() -> Iterator[str]:
    """A new database on the server, dropped afterwards: its URL."""
    name = f"automl_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def shared_search(processes: int, trials: int, work: Path) -> float:
    """Trials/s of ``processes`` processes searching one study at once."""
    with database() as url:
        command = [
            sys.executable,
            "-m",
            "automl",
            "model=auto",
            "model.families=[linear,lgbm]",
            "model.candidates.lgbm.classifier.n_estimators=50",
            "search.time_budget=null",
            f"search.n_trials={trials}",
            f"search.storage='{url}'",
            "search.study_name=bench",
            f"search.artifacts={work / 'artifacts'}",
            "tracking=none",
            "registry.enabled=false",
            "evaluation.plots=false",
            "evaluation.bootstrap=0",
            "evaluation.importance_rows=0",
        ]
        runs = [
            subprocess.Popen(
                [*command, f"hydra.run.dir={work / f'p{processes}-{i}'}"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
        for run in runs:
            _, err = run.communicate()
            if run.returncode:
                sys.exit(f"a search process failed:\n{err}")
        study = optuna.load_study(study_name="bench", storage=url)
        done = [t for t in study.trials if t.datetime_complete is not None]
        first = min(t.datetime_start for t in done)
        last = max(t.datetime_complete for t in done)
        return len(done) / (last - first).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    try:
        sa.create_engine(SERVER).connect().close()
    except sa.exc.OperationalError as exc:
        sys.exit(f"no PostgreSQL server at {sa.make_url(SERVER)!r}: {exc.orig}")
    print(f"shared search on PostgreSQL ({os.cpu_count()} CPUs, {args.trials} trials/process)")
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        base = None
        for n in args.processes:
            started = time.perf_counter()
            rate = shared_search(n, args.trials, Path(tmp))
            base = base or rate
            print(
                f"  {n} process(es): {rate:6.2f} trials/s  ({rate / base:.2f}x one process; "
                f"{n * args.trials} trials, {time.perf_counter() - started:.0f} s wall)"
            )


if __name__ == "__main__":
    main()
