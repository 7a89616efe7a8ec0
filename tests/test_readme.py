"""The README's quick start works as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from helpers import ROOT


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart.*?```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_OUTPUT_DIR"}
    commands = quickstart_commands()
    assert len(commands) >= 3
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "python"
        result = subprocess.run(
            [sys.executable, *args[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "outputs" / "wine_lgbm" / "metrics.json").is_file()
    assert (tmp_path / "scored.csv").read_text().startswith("alcohol,")
    assert list(tmp_path.glob("outputs/sweeps/*/*/summary.csv"))


def test_python_quickstart_runs_as_written(tmp_path):
    """The README's "From Python" block, run as a script in an empty folder."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- python-quickstart.*?```python\n(.*?)```", text, re.S).group(1)
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_OUTPUT_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "automl_conf" / "dataset" / "wine.yaml").is_file()
    assert len(list(tmp_path.glob("outputs/runs/*/*_wine_lgbm/model"))) == 1
    scores = result.stdout.strip().splitlines()[-1]
    assert scores.startswith("[") and len(scores.strip("[]").split()) == 3, result.stdout
