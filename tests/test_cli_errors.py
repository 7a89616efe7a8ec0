"""Bad config or bad data: one clear message, a non-zero exit, no run that looks complete."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import run_cli, run_dirs

USER_DATASET = """\
name: {name}
target: churn
task: binary
positive_class: "yes"
source:
  _target_: automl.data.sources.FileSource
  path: {path}
  cache_dir: ${{paths.cache_dir}}
  reader: {{_target_: pandas.read_csv, _partial_: true}}
contract:
  columns:
    tenure: {{dtype: int, nullable: false, min: 0}}
    plan: {{dtype: category, allowed: [basic, pro]}}
    charges: {{dtype: float}}
    churn: {{dtype: category, nullable: false, allowed: ["yes", "no"]}}
"""


def churn_frame(rows: int = 120) -> pd.DataFrame:
    """A small churn table built from the wine data's real measurements."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True).frame.head(rows)
    return pd.DataFrame(
        {
            "tenure": (wine["proline"] // 50).astype(int),
            "plan": ["basic" if v < 13 else "pro" for v in wine["alcohol"]],
            "charges": wine["color_intensity"],
            "churn": ["yes" if t == 0 else "no" for t in wine["target"]],
        }
    )


def write_dataset(conf: Path, frame: pd.DataFrame | None, name: str = "churn") -> Path:
    """A user config dir holding dataset/<name>.yaml, and its CSV (unless frame is None)."""
    data = conf / f"{name}.csv"
    if frame is not None:
        frame.to_csv(data, index=False)
    (conf / "dataset").mkdir(parents=True, exist_ok=True)
    (conf / "dataset" / f"{name}.yaml").write_text(USER_DATASET.format(name=name, path=data))
    return data


def assert_clean_failure(result, *fragments: str) -> None:
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in output, output
    for run in run_dirs():
        assert not (run / "metrics.json").exists() and not (run / "model").exists()


def train(conf: Path, *overrides: str):
    return run_cli(
        "automl",
        "--config-dir",
        str(conf),
        "dataset=churn",
        "search.n_trials=1",
        "evaluation.cv_folds=2",
        "evaluation.plots=false",
        *overrides,
    )


def test_unknown_dataset():
    assert_clean_failure(run_cli("automl", "dataset=nope"), "dataset/nope", "Available options")


def test_unknown_model():
    assert_clean_failure(run_cli("automl", "model=gpt"), "model/gpt")


def test_typo_in_a_key():
    assert_clean_failure(run_cli("automl", "search.n_trails=3"), "n_trails")


def test_missing_file(tmp_path):
    write_dataset(tmp_path, None)
    assert_clean_failure(train(tmp_path), "churn.csv", "not found")


def test_empty_file(tmp_path):
    write_dataset(tmp_path, None).write_text("")
    assert_clean_failure(train(tmp_path), "is empty")


def test_header_only_file(tmp_path):
    write_dataset(tmp_path, None).write_text("tenure,plan,charges,churn\n")
    assert_clean_failure(train(tmp_path), "no data rows")


def test_missing_column(tmp_path):
    write_dataset(tmp_path, churn_frame().drop(columns="charges"))
    assert_clean_failure(train(tmp_path), "missing required column(s): charges")


def test_wrong_dtype(tmp_path):
    frame = churn_frame()
    frame["tenure"] = frame["tenure"].astype(str)
    frame.loc[5, "tenure"] = "ten"
    write_dataset(tmp_path, frame)
    assert_clean_failure(train(tmp_path), "column 'tenure': wrong type", "ten")


def test_label_outside_declared_classes(tmp_path):
    frame = churn_frame()
    frame.loc[3, "churn"] = "maybe"
    write_dataset(tmp_path, frame)
    assert_clean_failure(train(tmp_path), "column 'churn'", "maybe")


def test_download_failure_says_what_to_do(tmp_path):
    write_dataset(tmp_path, None)
    yaml = tmp_path / "dataset" / "churn.yaml"
    yaml.write_text(
        yaml.read_text().replace("  reader:", "  url: http://127.0.0.1:9/churn.csv\n  reader:")
    )
    assert_clean_failure(train(tmp_path), "download from http://127.0.0.1:9/churn.csv failed")


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_shows_the_details(tmp_path, verbose):
    write_dataset(tmp_path, churn_frame().drop(columns="plan"))
    extra = ["hydra.verbose=true"] if verbose else []
    result = train(tmp_path, *extra)
    assert result.returncode != 0
    assert ("Traceback" in result.stdout + result.stderr) == verbose


def test_users_dataset_trains_with_no_code(tmp_path):
    write_dataset(tmp_path, churn_frame())
    result = train(tmp_path, "model=linear")
    assert result.returncode == 0, result.stderr
    [run] = run_dirs()
    assert (run / "metrics.json").is_file() and (run / "model" / "manifest.json").is_file()
    assert "test metrics (churn, linear)" in result.stdout + result.stderr
