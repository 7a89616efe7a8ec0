"""One server with 100 registered models: memory per loaded model, cold and warm latency,
and the model cache under a memory bound smaller than all of them.

Trains six small real models in this process (iris, wine, breast_cancer x ``model=linear``
and ``model=lgbm`` with ``--trees`` trees at most), registers copies of them as
``--models`` names with the registry's own ``register``, and starts the real server
(``python -m automl.serve``) twice:

1. no memory bound, room for every model: each model's first request (a cold load), then
   ``--warm`` more rounds over all of them (warm), p50/p95 in ms; the server's RSS growth
   per loaded model, by family, beside the cache's own estimate (``/health/ready``);
2. ``cache.max_memory_mb`` at ``--bound-share`` of what phase 1's models took:
   ``--requests`` requests to models drawn at random with Zipf-like weights (a few models
   get most of the traffic): hits, misses and drops from ``/metrics``, and the server's
   RSS against the bound plus its baseline (RSS less the cache's memory once one model
   of each family is loaded, so that the libraries' own memory is in the baseline).

Figures are printed, never asserted.

    .venv/bin/python bench/many_models.py [--models 100] [--trees 50] [--requests 1000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sklearn.datasets import load_breast_cancer, load_iris, load_wine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import serve_process, set_up_team  # noqa: E402

from automl.bundle.model import read_manifest  # noqa: E402
from automl.bundle.registry import Registry  # noqa: E402
from automl.config import compose_config  # noqa: E402

DATASETS = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}
FAMILIES = ("linear", "lgbm")
PROJECT = "bench"
MB = 2**20


def train(out: Path, trees: int) -> list[tuple[str, Path]]:
    """(family, run folder) of one small model per data set and family."""
    from automl.services.training import train as train_run

    made = []
    for dataset in DATASETS:
        for family in FAMILIES:
            overrides = [
                f"dataset={dataset}", f"model={family}", f"paths.output_dir={out}",
                "search.n_trials=1", "evaluation.cv_folds=2", "evaluation.plots=false",
                "evaluation.bootstrap=0", "tracking=none", "registry.enabled=false",
            ]  # fmt: skip
            if family == "lgbm":
                overrides.append(f"model.classifier.n_estimators={trees}")
            run = out / "runs" / f"{dataset}_{family}"
            train_run(compose_config("automl.conf", "train", overrides), run)
            made.append((family, run))
    return made


def register(out: Path, runs: list[tuple[str, Path]], n: int) -> dict[str, tuple[str, str]]:
    """``n`` models registered from the trained bundles, in turn: {name: (family, data set)}."""
    registry = Registry(out / "registry" / "registry.db", out / "registry" / "models")
    names = {}
    for i in range(n):
        family, run = runs[i % len(runs)]
        manifest = read_manifest(run / "model")
        name = f"{PROJECT}.m{i:03d}"
        registry.register(name, run / "model", dict(manifest, dataset=f"m{i:03d}"), run)
        names[name] = (family, manifest["dataset"])
    return names


def rss(pid: int) -> int:
    """Resident memory of process ``pid``, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))


def percentiles(times: list[float]) -> str:
    times = sorted(times)
    p95 = times[int(0.95 * (len(times) - 1))]
    return f"p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms"


def timed(client: httpx.Client, name: str, body: dict) -> float:
    """Milliseconds of one predict request (which must succeed)."""
    started = time.perf_counter()
    answer = client.post(f"/v1/models/{name}/predict", json=body)
    took = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        sys.exit(f"{name}: {answer.status_code} {answer.text}")
    return took


def cache_metrics(client: httpx.Client) -> dict[str, float]:
    """The ``automl_model_cache_*`` samples of ``/metrics``."""
    lines = client.get("/metrics").text.splitlines()
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in lines
        if line.startswith("automl_model_cache")
    }


def server(out: Path, log: Path, *extra: str) -> list[str]:
    return [
        f"paths.output_dir={out}", f"hydra.run.dir={log.with_suffix('')}", "cache.size=1000",
        "prediction_log.enabled=false", "ui.enabled=false", "log_level=warning", *extra,
    ]  # fmt: skip


def unbounded(out: Path, root: Path, names: dict, bodies: dict, key: str, warm: int) -> float:
    """Phase 1 (see the module docstring); returns the MiB the cache held with every model."""
    log = root / "serve-unbounded.log"
    with (
        serve_process(server(out, log, "cache.max_memory_mb=null"), log) as (url, proc),
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client,
    ):
        first = {f: next(n for n, (g, _) in names.items() if g == f) for f in FAMILIES}
        imports = [timed(client, n, bodies[names[n][1]]) for n in first.values()]
        cold, grown = [], {}
        for family in FAMILIES:  # the first of each family (imports its library) left out
            mine = [n for n, (f, _) in names.items() if f == family and n != first[family]]
            before = rss(proc.pid)
            cold += [timed(client, n, bodies[names[n][1]]) for n in mine]
            grown[family] = (rss(proc.pid) - before) / len(mine), mine
        warm_times = [
            timed(client, n, bodies[d]) for _ in range(warm) for n, (_, d) in names.items()
        ]
        ready = client.get("/health/ready").json()
    estimate = ready["cache"]["model_memory_mb"]
    print(f"phase 1: {len(names)} models loaded, no memory bound")
    print(f"{'family':<8} {'models':>6} {'RSS growth/model':>17} {'estimate/model':>15}")
    for family, (growth, mine) in grown.items():
        guess = statistics.mean(estimate[f"{n}/1"] for n in mine)
        print(f"{family:<8} {len(mine):>6} {growth / MB:>13.2f} MiB {guess:>11.2f} MiB")
    shown = ", ".join(f"{t:.0f} ms" for t in imports)
    print(f"cold load (first request of a model): {percentiles(cold)}")
    print(f"  the first model of each family (imports its library): {shown}")
    print(f"warm ({warm} more rounds, {len(warm_times)} requests): {percentiles(warm_times)}")
    print(f"the cache held {ready['cache']['memory_mb']:.1f} MiB (estimated)")
    return float(ready["cache"]["memory_mb"])


def bounded(
    out: Path, root: Path, names: dict, bodies: dict, key: str, bound: float, requests: int
) -> None:
    """Phase 2 (see the module docstring)."""
    first = {family: next(n for n, (f, _) in names.items() if f == family) for family in FAMILIES}
    log = root / "serve-bounded.log"
    overrides = server(
        out, log, f"cache.max_memory_mb={bound:.3f}", f"preload=[{','.join(first.values())}]"
    )
    order = list(names)
    random.Random(0).shuffle(order)  # popularity unrelated to the family
    weights = [1 / (rank + 1) for rank in range(len(order))]
    drawn = random.Random(1).choices(order, weights, k=requests)
    with (
        serve_process(overrides, log) as (url, proc),
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as client,
    ):
        held = client.get("/health/ready").json()["cache"]["memory_mb"]
        baseline = rss(proc.pid) - held * MB
        before = cache_metrics(client)
        times, peak, quarters = [], 0, []
        for i, name in enumerate(drawn, 1):
            times.append(timed(client, name, bodies[names[name][1]]))
            peak = max(peak, rss(proc.pid))
            if i % max(requests // 4, 1) == 0:
                quarters.append(f"{(rss(proc.pid) - baseline) / MB:.1f}")
        after = cache_metrics(client)
    hits = after['automl_model_cache_lookups_total{result="hit"}'] - before.get(
        'automl_model_cache_lookups_total{result="hit"}', 0
    )
    misses = after['automl_model_cache_lookups_total{result="miss"}'] - before.get(
        'automl_model_cache_lookups_total{result="miss"}', 0
    )
    drops = after.get('automl_model_cache_evictions_total{bound="memory"}', 0)
    print(f"phase 2: cache.max_memory_mb={bound:.1f} ({len(names)} models took more)")
    print(f"{requests} requests over {len(set(drawn))} models (Zipf-like): {hits:.0f} hits, "
          f"{misses:.0f} misses ({hits / max(hits + misses, 1):.0%} hit rate), "
          f"{drops:.0f} models dropped by the memory bound")  # fmt: skip
    print(f"latency: {percentiles(times)}")
    print(f"cache at the end: {after['automl_model_cache_models']:.0f} models, "
          f"{after['automl_model_cache_bytes'] / MB:.1f} MiB (estimated)")  # fmt: skip
    print(f"server RSS: baseline {baseline / MB:.0f} MiB (libraries loaded, no model), "
          f"peak {peak / MB:.0f} MiB = baseline + {(peak - baseline) / MB:.1f} MiB "
          f"against the bound of {bound:.1f} MiB")  # fmt: skip
    print(f"  RSS above the baseline after each quarter of the requests: "
          f"{', '.join(quarters)} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--trees", type=int, default=50, help="most trees of an lgbm model")
    parser.add_argument("--warm", type=int, default=5, help="warm rounds over every model")
    parser.add_argument("--requests", type=int, default=1000, help="phase 2's requests")
    parser.add_argument("--bound-share", type=float, default=0.25)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="automl-many-models-"))
    out = root / "outputs"
    started = time.perf_counter()
    runs = train(out, args.trees)
    names = register(out, runs, args.models)
    team = {"projects": [PROJECT], "users": {"bench": {"roles": {PROJECT: "viewer"}}}}
    key = set_up_team(out, team)["keys"]["bench"]
    bodies = {d: load(as_frame=True).data.iloc[0].to_dict() for d, load in DATASETS.items()}
    print(f"{args.models} models registered from {len(runs)} trained ones "
          f"({', '.join(f'{d} {f}' for d in DATASETS for f in FAMILIES)}; lgbm <= {args.trees} "
          f"trees) in {time.perf_counter() - started:.0f} s under {root}")  # fmt: skip
    total = unbounded(out, root, names, bodies, key, args.warm)
    bounded(out, root, names, bodies, key, args.bound_share * total, args.requests)
    print(f"done in {time.perf_counter() - started:.0f} s")
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
