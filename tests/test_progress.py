"""The search's progress: a live line on a terminal, plain log lines in a pipe, silence
with ``progress=false``, and one line per trial in the run's train.log (not the console)."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import ROOT, run_cli

from automl.search.progress import SearchProgress

# small runs: 6 trials of 2 folds, one thread per fit (the machine may be busy), nothing
# written but the run folder
SMALL = [
    "dataset=breast_cancer",
    "n_jobs=1",
    "search.n_trials=6",
    "evaluation.cv_folds=2",
    "evaluation.plots=false",
    "tracking=none",
    "registry.enabled=false",
]
# model=auto with two cheap families, under a time budget (its trials run in workers)
AUTO = ["model=auto", "model.families=[lgbm_default,linear]", "search.time_budget=60"]


def run_on_terminal(args: list[str], timeout: float = 120) -> str:
    """``python -m <args>`` with stdin, stdout and stderr on a pseudo-terminal of 120
    columns: everything it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the command has exited
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def train_log(output_dir: Path) -> str:
    """The train.log of the one run under ``output_dir``."""
    (path,) = output_dir.glob("runs/*/*/train.log")
    return path.read_text()


@pytest.mark.slow  # ~16 s under a budget; the live line without one is the default run's
def test_live_line_on_a_terminal_under_a_budget(tmp_path):
    text = run_on_terminal(["automl", *SMALL, *AUTO, f"paths.output_dir={tmp_path}"])
    # one line redrawn in place (\r): trials done, best score and family, time left
    states = [s for s in re.split(r"[\r\n]", text) if s.startswith("search: ")]
    assert any(re.fullmatch(r"search: 0/6 trials, \d+s left.*", s) for s in states), states
    final = [s for s in states if s.startswith("search: 6/6 trials")]
    assert final, states
    assert re.match(
        r"search: 6/6 trials, best CV 0\.\d{5} \((lgbm_default|linear)\), \d+s left", final[-1]
    )
    assert "\rsearch: " in text
    # the run's log lines still come out whole, on lines of their own
    assert "\n[INFO] search: 6 trials in" in text.replace("\r", "")


def test_live_line_counts_trials_without_a_budget(tmp_path):
    text = run_on_terminal(["automl", *SMALL, "model=lgbm", f"paths.output_dir={tmp_path}"])
    states = [s for s in re.split(r"[\r\n]", text) if s.startswith("search |")]
    assert any("| 3/6 trials, best CV 0." in s and "(lgbm)" in s for s in states), states
    assert any("| 6/6 trials, best CV 0." in s for s in states), states
    assert "left" not in "".join(states)  # no budget: no time left


def test_plain_lines_in_a_pipe_and_trials_in_train_log(tmp_path):
    done = run_cli(
        "automl", *SMALL, "model=lgbm", "progress_every=2", f"paths.output_dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = re.findall(
        r"^\[INFO\] search: (\d)/6 trials, best CV 0\.\d{5} \(lgbm\)$", done.stdout, re.M
    )
    assert lines == ["2", "4", "6"], done.stdout
    assert "\r" not in done.stdout + done.stderr  # no live line in a pipe
    # every trial has its line in train.log (number, family, score, seconds, params) ...
    log = train_log(tmp_path)
    trials = re.findall(
        r"\[automl\.trials\]\[DEBUG\] - trial (\d) lgbm: 0\.\d{5} in [\d.]+s \{learning_rate=.*\}",
        log,
    )
    assert trials == [str(n) for n in range(6)], log
    assert "search: 6/6 trials, best CV" in log  # the progress lines too
    # ... and not on the console
    assert "automl.trials" not in done.stdout and "trial 0 lgbm:" not in done.stdout


def test_progress_false_is_silent(tmp_path):
    done = run_cli(
        "automl",
        *SMALL,
        "model=lgbm",
        "progress=false",
        "progress_every=1",
        f"paths.output_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trials, best CV" not in done.stdout + done.stderr
    assert "[INFO] search: 6 trials in" in done.stdout  # the search's summary stays
    assert len(re.findall(r"\[automl\.trials\]", train_log(tmp_path))) == 6  # the record stays


def test_plain_lines_say_the_same_facts(caplog):
    """Off a terminal: a line every ``every`` trials; a failed trial counts, not scores."""
    progress = SearchProgress(
        every=2, n_trials=None, deadline=time.monotonic() + 30, stream=io.StringIO()
    )
    with caplog.at_level(logging.DEBUG):
        progress.trial(0, "rf", {"rf.max_depth": 7, "rf.max_features": 0.123456}, 0.91, 1.5)
        progress.trial(1, "xgb", {"xgb.eta": 0.3}, None, 0.4)
        progress.trial(2, "xgb", {"xgb.eta": 0.1}, 0.95, 0.5)
        progress.close()
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert messages[0] == (
        "automl.trials",
        "trial 0 rf: 0.91000 in 1.50s {max_depth=7, max_features=0.1235}",
    )
    assert messages[1] == ("automl.trials", "trial 1 xgb: failed in 0.40s {eta=0.3}")
    assert re.fullmatch(
        r"search: 2 trials, best CV 0\.91000 \(rf\), (29|30)s left", messages[2][1]
    ), messages
    assert len(messages) == 4 and progress.best == 0.95 and progress.best_family == "xgb"
