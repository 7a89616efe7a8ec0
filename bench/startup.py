"""Where the wall time of the default training job goes (``make run``: ``python -m automl``).

Runs the job in a subprocess with a fresh output folder, ``--runs`` times into that same
folder (the first run creates the MLflow store and the registry, later ones find them),
and prints the total wall time and seconds per phase: Python's start, imports, Hydra
(config, logging, run folder), pool start, data, search (with the refit), evaluation,
monitoring profile, importance, plots, model card, bundle save, tracking, registry, the
rest of ``train()``, and exit. Phases are timed in the child by wrapping the functions
``train()`` calls (exclusive time: a phase nested in another is counted once; a function
``train()`` does not have is skipped); nothing in automl is changed. The tracking line of
``train.log`` adds its own breakdown (MLflow's import, store, logging) when it has one.

    .venv/bin/python bench/startup.py [--runs 2] [override ...]   # e.g. search.n_trials=5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = [
    "python start",
    "imports",
    "hydra (config, logging)",
    "pool start",
    "data",
    "search + refit",
    "evaluation",
    "monitoring profile",
    "importance",
    "plots",
    "model card",
    "bundle save",
    "tracking",
    "registry",
    "rest of train()",
    "exit",
]
TRACKING_PARTS = re.compile(r"MLflow run \S+ logged .* in ([\d.]+)s \(([^)]*)\)")


def child(timings_path: str, overrides: list[str]) -> None:
    """Run the job in this process with every phase timed; write the times as JSON."""
    started = time.time()
    seconds: dict[str, float] = defaultdict(float)
    stack: list[float] = []

    def clock(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        tic = time.perf_counter()
        stack.append(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            inner, spent = stack.pop(), time.perf_counter() - tic
            seconds[label] += spent - inner
            if stack:
                stack[-1] += spent

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        if isinstance(owner, type) and isinstance(vars(owner).get(name), classmethod):
            setattr(owner, name, classmethod(lambda _, *a, **k: clock(label, original, *a, **k)))
        else:
            setattr(owner, name, lambda *a, **k: clock(label, original, *a, **k))

    seconds["python start"] = started - float(os.environ["BENCH_SPAWNED"])
    tic = time.perf_counter()
    import automl.apps.train as app
    import automl.services.training as training
    from automl.bundle.model import Model
    from automl.bundle.registry import Registry
    from automl.tracking import MlflowTracking, NoTracking

    seconds["imports"] = time.perf_counter() - tic
    for name, label in [
        ("start_pool", "pool start"),
        ("load_dataset", "data"),
        ("fit_search", "search + refit"),
        ("evaluate", "evaluation"),  # the names of today's train() and earlier ones
        ("record", "evaluation"),
        ("score", "evaluation"),
        ("reference_profile", "monitoring profile"),
        ("held_out_importance", "importance"),
        ("save_plots", "plots"),
        ("write_card", "model card"),
        ("train", "rest of train()"),
    ]:
        if hasattr(training, name):
            wrap(training, name, label)
    wrap(Model, "save", "bundle save")
    wrap(Registry, "at", "registry")
    wrap(Registry, "register", "registry")
    wrap(MlflowTracking, "log_run", "tracking")
    wrap(NoTracking, "log_run", "tracking")
    sys.argv = ["automl", *overrides]
    try:
        clock("hydra (config, logging)", app.main)
    finally:
        Path(timings_path).write_text(json.dumps({"seconds": seconds, "ended": time.time()}))


def run_once(output_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """One job in a subprocess: its phases, total wall time and tracking breakdown."""
    timings = output_dir / "timings.json"
    command = [sys.executable, __file__, "--child", str(timings), *overrides]
    command.append(f"paths.output_dir={output_dir}")
    env = dict(os.environ, BENCH_SPAWNED=repr(time.time()))
    spawned = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"the job failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    result = json.loads(timings.read_text())
    timings.unlink()
    seconds = dict(result["seconds"])
    seconds["exit"] = ended - result["ended"]
    logs = sorted(output_dir.glob("runs/*/*/train.log"), key=lambda p: p.stat().st_mtime)
    parts = TRACKING_PARTS.search(logs[-1].read_text()) if logs else None
    return {"seconds": seconds, "wall": ended - spawned, "tracking": parts and parts.group(2)}


def main() -> None:
    """Run the job ``--runs`` times and print the breakdown."""
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs into the same fresh folder")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the job (default: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automl-startup-") as tmp:
        runs = [run_once(Path(tmp), args.overrides) for _ in range(args.runs)]
    job = " ".join(["python -m automl", *args.overrides])
    print(f"{job}: {args.runs} run(s) into one fresh output folder (run 1 creates the stores)")
    heads = "".join(f"{f'run {i + 1}':>9}" for i in range(len(runs)))
    print(f"{'phase (seconds)':<26}{heads}")
    for phase in PHASES:
        cells = "".join(f"{r['seconds'].get(phase, 0.0):9.2f}" for r in runs)
        print(f"{phase:<26}{cells}")
    print(f"{'total wall':<26}" + "".join(f"{r['wall']:9.2f}" for r in runs))
    overhead = [r["wall"] - r["seconds"].get("search + refit", 0.0) for r in runs]
    print(f"{'all but search + refit':<26}" + "".join(f"{s:9.2f}" for s in overhead))
    for i, r in enumerate(runs):
        if r["tracking"]:
            print(f"run {i + 1} tracking: {r['tracking']}")


if __name__ == "__main__":
    main()
