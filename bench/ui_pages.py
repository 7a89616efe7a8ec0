"""How fast each dashboard page answers with 2,000 runs and 100 models in the stores.

Builds the stores in a temp folder (or ``--root``) from one real training run: the run
folder copied to ``--runs`` run folders with varied metrics, its bundle registered as
``--models`` models over 10 projects with the registry's own ``register`` (2 versions
each, a production alias on half), 20 monitoring checks per model in the history, and
2,000 logged predictions; a user with a role on every project. Then starts the real
server (``python -m automl.serve``), signs in through the form and times each page
(the first GET, then median and p95 of ``--repeat`` more, in ms). Figures are printed, never
asserted; the issue's target is < 300 ms per page on 2 cores.

    .venv/bin/python bench/ui_pages.py [--runs 2000] [--models 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import serve_process  # noqa: E402

from automl.bundle.model import read_manifest  # noqa: E402
from automl.bundle.registry import Registry  # noqa: E402
from automl.monitoring.history import entry, record  # noqa: E402
from automl.serving.prediction_log import SqliteStore  # noqa: E402

PROJECTS = [f"team{i}" for i in range(10)]


def train(out: Path) -> Path:
    """One real run (breast_cancer, LightGBM, with plots); its folder."""
    command = [
        sys.executable, "-m", "automl", "project=team0", "dataset=breast_cancer",
        "model=lgbm", "search.n_trials=3", "evaluation.cv_folds=2", "tracking=none",
        f"paths.output_dir={out}", "registry.enabled=false",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    return next((out / "runs").glob("*/*"))


def clone_runs(source: Path, out: Path, n: int) -> list[Path]:
    """``n`` run folders like ``source``, over the projects and five families, with
    varied metrics (the manifest and config say which project and family)."""
    families = ["lgbm", "xgb", "rf", "linear", "auto"]
    manifest = json.loads((source / "model" / "manifest.json").read_text())
    metrics = json.loads((source / "metrics.json").read_text())
    config = (source / ".hydra" / "config.yaml").read_text()
    made = []
    for i in range(n):
        project, family = PROJECTS[i % len(PROJECTS)], families[i % len(families)]
        day = f"2026-{1 + i // 200 % 12:02d}-{1 + i % 28:02d}"
        folder = out / "runs" / day / f"{i:02d}-00-00-{i:06d}_breast_cancer_{family}"
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("pipeline.joblib"))
        varied = {k: (v * (0.9 + 0.1 * ((i * 7919) % 100) / 100) if isinstance(v, float) else v)
                  for k, v in metrics.items()}  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(varied))
        m = dict(manifest, project=project, model_family=family, metrics=varied)
        (folder / "model" / "manifest.json").write_text(json.dumps(m))
        text = re.sub(r"(?m)^project: .*$", f"project: {project}", config)
        (folder / ".hydra" / "config.yaml").write_text(text)
        made.append(folder)
    return made


def register_models(out: Path, runs: list[Path], source: Path, n: int) -> list[str]:
    """``n`` models (2 versions each) registered from the real bundle."""
    registry = Registry(out / "registry" / "registry.db", out / "registry" / "models")
    manifest = read_manifest(source / "model")
    names = []
    for i in range(n):
        project = PROJECTS[i % len(PROJECTS)]
        name = f"{project}.data{i:03d}"
        for version in (1, 2):
            m = dict(manifest, project=project, dataset=f"data{i:03d}")
            registry.register(name, source / "model", m, runs[(2 * i + version) % len(runs)])
        if i % 2 == 0:
            registry.set_alias(name, "production", 1)
        names.append(name)
    return names


def fill_logs(out: Path, names: list[str], source: Path) -> None:
    """20 checks per model in the history; 2,000 predictions of the first model."""
    history = out / "monitoring" / "history.jsonl"
    for k in range(20):
        for i, name in enumerate(names):
            status = ("ok", "warning", "drift")[(i + k) % 3]
            verdict = {"status": status, "signals": [], "drift": {"rows": 500,
                       "drifted_columns": ["mean radius"] if status != "ok" else [],
                       "share_drifted": 0.1 * (status != "ok")}}  # fmt: skip
            record(history, entry(name, 1, "online", verdict) | {"time": time.time() - k * 3600})
    features = read_manifest(source / "model")["features"]
    rows = [
        (f"r{i // 10:05d}", i % 10, time.time() - i, names[0], 1,
         json.dumps(dict.fromkeys(features, 1.0)), json.dumps("benign"),
         json.dumps({"benign": 0.9, "malignant": 0.1}))
        for i in range(2000)
    ]  # fmt: skip
    SqliteStore(out / "serving" / "predictions.db").write(rows, [])


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[int, float, float, float]:
    """(status, first request's ms, median ms, p95 ms) of ``repeat`` GETs after a first."""
    started = time.perf_counter()
    client.get(path)
    first = (time.perf_counter() - started) * 1000
    times = []
    status = 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    times.sort()
    return status, first, statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="automl-ui-bench-"))
    out = root / "outputs"
    started = time.perf_counter()
    source = train(root / "source")
    runs = clone_runs(source, out, args.runs)
    names = register_models(out, runs, source, args.models)
    fill_logs(out, names, source)
    team = {
        "projects": PROJECTS,
        "users": {"lead": {"roles": dict.fromkeys([*PROJECTS, "*"], "admin")}},
    }
    (root / "team.yaml").write_text(json.dumps(team))
    db = f"sqlite:///{root}/auth.db"
    admin = [sys.executable, "-m", "automl.serving.admin", "--db", db, "--actor", "bench"]
    keys = root / "keys.json"
    subprocess.run([*admin, "setup", str(root / "team.yaml"), "--keys-out", str(keys)], check=True)

    key = json.loads(keys.read_text())["lead"]
    print(f"stores: {args.runs} runs, {args.models} models x 2 versions, "
          f"{20 * args.models} checks, 2,000 predictions; built in "
          f"{time.perf_counter() - started:.0f}s under {root}")  # fmt: skip
    run_id = runs[5].relative_to(out).as_posix()
    model = names[0]
    pages = [
        "/ui/",
        "/ui/runs",
        "/ui/runs?sort=auc&descending=true&page=10",
        "/ui/runs?project=team3&family=xgb",
        f"/ui/runs/{run_id}",
        f"/ui/runs/compare?run={run_id}&run={runs[6].relative_to(out).as_posix()}",
        "/ui/models",
        f"/ui/models/{model}",
        f"/ui/models/{model}/1",
        "/ui/monitoring",
        f"/ui/monitoring/{model}",
        "/ui/serving",
        f"/ui/serving/{model}",
        "/ui/data",
        "/ui/data/team0/data000",
        "/ui/admin",
        "/ui/admin/audit",
    ]
    with (
        serve_process([f"paths.output_dir={out}", f"auth.url={db}"], root / "serve.log") as (
            url,
            _,
        ),
        httpx.Client(base_url=url, follow_redirects=False) as client,
    ):
        form = client.get("/ui/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        done = client.post("/ui/sign-in", data={"csrf": token, "key": key, "next": "/ui/"})
        assert done.status_code == 303, done.text
        print(f"{'page':<64} {'status':>6} {'first ms':>9} {'median ms':>10} {'p95 ms':>8}")
        worst = 0.0
        for path in pages:
            status, first, median, p95 = timed(client, path, args.repeat)
            worst = max(worst, p95)
            print(f"{path[:64]:<64} {status:>6} {first:>9.1f} {median:>10.1f} {p95:>8.1f}")
        print(f"slowest p95: {worst:.1f} ms (target: every page < 300 ms)")
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
