"""Load on ``python -m automl.serve``, next to a trivial FastAPI endpoint, on this machine.

Trains a quick adult LightGBM model into a temp folder (or uses ``--output-dir`` with a
registered ``default.adult``), creates a key, starts the server and a constant-returning
FastAPI app with the same uvicorn settings, then measures with ``wrk`` (when installed,
``apt-get install wrk``) or a small asyncio HTTP/1.1 client:

- single-record predictions at concurrency 8: requests/s, p50, p99, and the ratio to the
  trivial endpoint;
- batches of 1,000 rows at concurrency 2, as JSON records, columnar JSON and an Arrow IPC
  stream: rows/s, and the ratio to scoring the same rows in process (``Model.score`` on
  the raw frame, timed in this run).

Figures are printed, never asserted. Targets (issue 16): one record >= 0.6x the trivial
endpoint with p99 <= 10 ms; batches over HTTP >= 0.5x in-process scoring.

    .venv/bin/python bench/serve_load.py [--seconds 10] [--workers 1] [--client python]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import free_port  # noqa: E402
from test_serve import adult_test_frame  # noqa: E402

DATA = Path(os.environ.get("AUTOML_DATA_DIR", ROOT.parent / "shared" / "data"))
TRIVIAL = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.post("/constant")
async def constant() -> dict:
    return {"prediction": "<=50K"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, log_level="warning",
            access_log=False)
"""


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def adult_rows(n: int) -> list[dict]:
    """Raw rows of the adult test file (the helper the serving tests use)."""
    return adult_test_frame(n).to_dict("records")


def lua_string(data: bytes) -> str:
    """``data`` as a Lua string literal (decimal escapes: any bytes, Arrow included)."""
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def wrk(url: str, body: bytes, headers: dict, seconds: int, connections: int) -> dict:
    """requests/s, p50 and p99 (ms) from wrk with a POST script."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(f"wrk.method = 'POST'\nwrk.body = {lua_string(body)}\n")
        for key, value in headers.items():
            fh.write(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}\n")
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            fh.name,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(fh.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


async def python_client(
    url: str, body: bytes, headers: dict, seconds: float, connections: int
) -> dict:
    """The same measure with keep-alive HTTP/1.1 connections on asyncio streams."""
    parsed = httpx.URL(url)
    head = f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += not status.startswith(b"HTTP/1.1 200")
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - began
    lat = np.array(latencies) * 1e3
    return {
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "errors": errors,
    }


def measure(client: str, url: str, body: bytes, headers: dict, seconds: int, conns: int) -> dict:
    if client == "wrk":
        return wrk(url, body, headers, seconds, conns)
    return asyncio.run(python_client(url, body, headers, seconds, conns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (both apps)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--client", choices=["wrk", "python"], default=None)
    parser.add_argument("--output-dir", type=Path, help="reuse a registry with default.adult")
    args = parser.parse_args()
    client = args.client or ("wrk" if shutil.which("wrk") else "python")
    out = args.output_dir or Path(tempfile.mkdtemp(prefix="automl-serve-bench-"))
    env = dict(os.environ, AUTOML_OUTPUT_DIR=str(out), AUTOML_DATA_DIR=str(DATA))
    if not (out / "registry" / "registry.db").is_file():
        print("training a quick adult LightGBM model ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "automl",
                "dataset=adult",
                "model=lgbm",
                "search.n_trials=1",
                "evaluation.cv_folds=2",
                "evaluation.plots=false",
                "tracking=none",
                f"hydra.run.dir={out}/run",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    from automl.services.identity import AuthStore

    store = AuthStore(f"sqlite:///{out}/serving/auth.db")
    store.add_user("bench", "bench")
    store.add_project("default", "bench")
    store.grant("bench", "default", "viewer", "bench")
    headers = {
        "Authorization": f"Bearer {store.create_key('bench', 'bench')}",
        "Content-Type": "application/json",
    }
    port, trivial_port = free_port(), free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "automl.serve",
            f"port={port}",
            f"workers={args.workers}",
            "preload=[default.adult]",
            "log_level=warning",
            f"hydra.run.dir={out}/serve",
        ],
        cwd=ROOT,
        env=env,
    )
    trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL, str(trivial_port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", server)
        wait_ready(f"http://127.0.0.1:{trivial_port}/docs", trivial)
        rows = adult_rows(args.batch_rows)
        one = json.dumps(rows[0]).encode()
        frame = adult_test_frame(args.batch_rows)
        batches = {
            "JSON records": (json.dumps(rows).encode(), "application/json"),
            "columnar JSON": (
                json.dumps({"columns": list(frame), "data": frame.to_numpy().tolist()}).encode(),
                "application/json",
            ),
            "Arrow IPC": (arrow_stream(frame), "application/vnd.apache.arrow.stream"),
        }
        predict = f"http://127.0.0.1:{port}/v1/models/default.adult/predict"
        answer = httpx.post(predict, content=one, headers=headers).json()
        assert answer["path"] == "fast", answer
        measure(client, predict, one, headers, 2, args.concurrency)  # warm up
        base = measure(
            client,
            f"http://127.0.0.1:{trivial_port}/constant",
            b"{}",
            {"Content-Type": "application/json"},
            args.seconds,
            args.concurrency,
        )
        single = measure(client, predict, one, headers, args.seconds, args.concurrency)
        batch_figures = {
            form: measure(client, predict, body, {**headers, "Content-Type": kind}, args.seconds, 2)
            for form, (body, kind) in batches.items()
        }
    finally:
        server.terminate()
        trivial.terminate()
        server.wait(30)
        trivial.wait(30)
    cores = os.cpu_count()
    print(
        f"serve_load ({client}, {cores} cores, {args.workers} worker(s), "
        f"{args.seconds} s per measure, server and client on this machine)"
    )
    print(
        f"  trivial FastAPI constant  c={args.concurrency}: {base['rps']:8.0f} req/s  "
        f"p50 {base['p50']:6.2f} ms  p99 {base['p99']:6.2f} ms"
    )
    print(
        f"  predict 1 record (fast)   c={args.concurrency}: {single['rps']:8.0f} req/s  "
        f"p50 {single['p50']:6.2f} ms  p99 {single['p99']:6.2f} ms  "
        f"= {single['rps'] / base['rps']:.2f} x trivial  (errors {single['errors']})"
    )
    in_process = in_process_rows_per_s(out, frame)
    print(f"  in-process Model.score, {args.batch_rows} raw rows: {in_process:8.0f} rows/s")
    for form, figures in batch_figures.items():
        rate = figures["rps"] * args.batch_rows
        print(
            f"  predict {args.batch_rows} rows, {form:<13} c=2: {rate:8.0f} rows/s  "
            f"p50 {figures['p50']:6.1f} ms  = {rate / in_process:.2f} x in-process  "
            f"(errors {figures['errors']})"
        )
    print("  targets: one record >= 0.6 x trivial, p99 <= 10 ms; batches >= 0.5 x in-process")


def arrow_stream(frame) -> bytes:
    """``frame`` as an Arrow IPC stream (the body of Content-Type
    application/vnd.apache.arrow.stream)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def in_process_rows_per_s(out: Path, frame, repeat: int = 20) -> float:
    """Rows/s of ``Model.score`` on ``frame`` (raw rows) in this process, one thread, the
    best of ``repeat`` runs: the registered model, loaded as the server loads it."""
    from automl.bundle.registry import Registry
    from automl.services.scoring import one_thread_each

    model = Registry(out / "registry" / "registry.db", out / "registry" / "models").load(
        "default.adult"
    )
    one_thread_each(model.pipeline)  # as the server holds it
    model.score(frame)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        model.score(frame)
        best = min(best, time.perf_counter() - started)
    return len(frame) / best


if __name__ == "__main__":
    main()
