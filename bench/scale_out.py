"""Benchmark: the building blocks of a scaled-out deployment, on PostgreSQL.

- **Shared search:** 1, 2 and 4 processes (standing in for machines) search one
  ``model=auto`` study in PostgreSQL at once (breast_cancer, linear and a 50-tree LightGBM,
  ``search.n_trials`` each): trials/s of the whole study, from the trials' own start and
  finish times (process start-up left out).
- **Registrations:** 1 and 4 processes registering versions of one model into one
  registry (SQLite file, then PostgreSQL; each registration copies a small real bundle and
  takes the registry's write lock): registrations/s.

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
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(processes)
        ]
        for run in runs:
            out, _ = run.communicate()
            if run.returncode:
                sys.exit(f"a search process failed:\n{out}")
        study = optuna.load_study(study_name="bench", storage=url)
        done = [t for t in study.trials if t.datetime_complete is not None]
        first = min(t.datetime_start for t in done)
        last = max(t.datetime_complete for t in done)
        return len(done) / (last - first).total_seconds()


BOOKKEEPING = """
import sys, time, warnings
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, n = sys.argv[1], int(sys.argv[2])
study = optuna.create_study(study_name="book", storage=url, load_if_exists=True)
print(time.time(), flush=True)
for _ in range(n):
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("seconds", 0.0)
    study.tell(trial, 0.5)
print(time.time())
"""

REGISTER = """
import json, sys, time
from pathlib import Path
from automl.bundle.registry import Registry
uri, store, bundle, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
manifest = json.loads((bundle / "manifest.json").read_text())
registry = Registry(uri, store)
registry.register("bench.warmup", bundle, manifest, bundle)  # connect, make tables: not timed
print(time.time(), flush=True)
for _ in range(n):
    registry.register("bench.iris", bundle, manifest, bundle)
print(time.time())
"""


def rate(processes: int, n: int, script: str, *args: str) -> float:
    """Operations/s of ``processes`` processes each running ``script`` (``n`` operations
    between the two times it prints) at once."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args, str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    spans = []
    for run in runs:
        out, err = run.communicate()
        if run.returncode:
            sys.exit(f"a benchmark process failed:\n{err}")
        spans.append([float(t) for t in out.split()])
    return processes * n / (max(e for _, e in spans) - min(s for s, _ in spans))


def iris_bundle(work: Path) -> Path:
    """A small real bundle (iris, linear) to register again and again."""
    from automl.config import register_schemas
    from automl.services.training import train

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import FAST, compose_train

    register_schemas()
    overrides = ["dataset=iris", "model=linear", *FAST, "registry.enabled=false"]
    train(compose_train(overrides), work / "iris")
    return work / "iris" / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials per process")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--registrations", type=int, default=40, help="per process")
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
            speed = shared_search(n, args.trials, Path(tmp))
            base = base or speed
            print(
                f"  {n} process(es): {speed:6.2f} trials/s  ({speed / base:.2f}x one process; "
                f"{n * args.trials} trials, {time.perf_counter() - started:.0f} s wall)"
            )
        print("study bookkeeping on PostgreSQL (ask, one parameter, tell; no fitting)")
        for n in (1, 4):
            with database() as url:
                optuna.logging.set_verbosity(optuna.logging.WARNING)
                optuna.create_study(study_name="book", storage=url)
                ops = rate(n, args.registrations * 5, BOOKKEEPING, url)
            print(f"  {n} process(es): {ops:7.1f} trials/s")
        work = Path(tmp)
        bundle = iris_bundle(work)
        print(f"registrations ({args.registrations} per process, one model, each a bundle copy)")
        for kind in ("sqlite", "postgresql"):
            for n in (1, 4):
                store = work / f"store-{kind}-{n}"
                place = (str(store), str(bundle))
                if kind == "sqlite":
                    ops = rate(n, args.registrations, REGISTER, str(work / f"r{n}.db"), *place)
                else:
                    with database() as url:
                        ops = rate(n, args.registrations, REGISTER, url, *place)
                print(f"  {kind:<10} {n} process(es): {ops:7.1f} registrations/s")


if __name__ == "__main__":
    main()
