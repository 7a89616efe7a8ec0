"""The installed package carries its configs: `python -m automl` works from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT


def test_installed_wheel_runs_from_another_directory(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("automl-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=str(target), AUTOML_OUTPUT_DIR=str(elsewhere / "out"))
    result = subprocess.run(
        [sys.executable, "-c", "import automl; print(automl.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith(str(target))  # the installed copy, not the checkout
    result = subprocess.run(
        [sys.executable, "-m", "automl", "dataset=iris", "model=linear", "experiment=smoke"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert list((elsewhere / "out").glob("runs/*/*/model/manifest.json"))
    run = next((elsewhere / "out").glob("runs/*/*"))
    result = subprocess.run(
        [sys.executable, "-m", "automl.predict", f"model={run}", "--cfg", "job"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "formats:" in result.stdout, result.stderr
    # the console scripts: each runs its app (here its help or usage), from the wheel
    bin_dir = target / "bin"
    for script, expected in [
        ("automl", "automl: config-first AutoML"),
        ("automl-predict", "automl.predict"),
        ("automl-monitor", "automl.monitor"),
        ("automl-ingest", "automl.ingest"),
        ("automl-serve", "automl.serve"),
        ("automl-registry", "usage:"),
        ("automl-admin", "usage:"),
        ("automl-backup", "automl.backup"),
    ]:
        result = subprocess.run(
            [sys.executable, str(bin_dir / script), "--help"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0 and expected in result.stdout, (script, result.stderr)
