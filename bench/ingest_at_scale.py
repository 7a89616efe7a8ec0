"""Benchmark: `python -m automl.ingest` on a 1,000,000-row CSV built from real adult rows.

Prints rows/s and the peak memory of the ingest process, next to a bare
`pandas.read_csv` of the same file (no inference, typing, checks or Parquet output)
measured in the same run.

Usage: python bench/ingest_at_scale.py [--data-dir ../shared/data] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = list(OmegaConf.load(ROOT / "conf" / "dataset" / "adult.yaml").source.reader.names)


def child(code: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a Python child process running ``code``."""
    code += "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = [line for line in done.stdout.splitlines() if line.startswith("PEAK ")][-1]
    return seconds, int(peak.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    source = Path(args.data_dir) / "adult-train.csv"
    if not source.is_file():
        sys.exit(f"{source} not found (pass --data-dir)")
    with tempfile.TemporaryDirectory() as tmp:
        adult = pd.read_csv(source, header=None, names=COLUMNS, skipinitialspace=True)
        big = adult.sample(args.rows, replace=True, random_state=0)
        csv = Path(tmp) / "adult_1m.csv"
        big.to_csv(csv, index=False)
        del adult, big
        bare_s, bare_mb = child(f"import pandas as pd; pd.read_csv({str(csv)!r})")
        ingest = (
            "import sys; from automl.ingest.__main__ import main; "
            f"sys.argv = ['ingest', 'input={csv}', 'target=income', 'name=adult_1m', "
            f"'conf_dir={tmp}/conf', 'progress=false', 'report.enabled=false']; main()"
        )
        ours_s, ours_mb = child(ingest)
        written = pd.read_parquet(Path(tmp) / "conf" / "data" / "adult_1m.parquet", columns=["age"])
    rows = args.rows
    assert len(written) == rows, len(written)
    print(f"ingest: {rows:,} adult rows, CSV -> typed Parquet + YAML (report off), 2 CPUs")
    print(f"{'':<34}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}")
    print(
        f"{'automl.ingest (whole process)':<34}{ours_s:>9.1f}{rows / ours_s:>12,.0f}"
        f"{ours_mb:>13,.0f}"
    )
    print(
        f"{'pandas.read_csv, whole file':<34}{bare_s:>9.1f}{rows / bare_s:>12,.0f}{bare_mb:>13,.0f}"
    )


if __name__ == "__main__":
    main()
