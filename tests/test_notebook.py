"""docs/notebook.ipynb runs as written (nbclient, a fresh kernel, an empty folder)."""

from __future__ import annotations

import os

import pytest
from helpers import ROOT

nbformat = pytest.importorskip("nbformat", reason="the dev extra (nbformat) is not installed")
nbclient = pytest.importorskip("nbclient", reason="the dev extra (nbclient) is not installed")


def test_example_notebook_runs_data_to_prediction(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOML_OUTPUT_DIR", raising=False)
    monkeypatch.setenv("AUTOML_OUTPUT_DIR", str(tmp_path / "outputs"))
    notebook = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )  # fmt: skip
    client.execute()
    outputs = {
        i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))
        for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
    }  # fmt: skip
    sums = outputs[6]  # contributions + base value: the positive class's probability
    proba = outputs[7]
    assert sums and proba, outputs
    assert (tmp_path / "cancer_model" / "model_card.md").is_file()
    assert "# Model card" in outputs[9]
    assert os.listdir(tmp_path / "outputs" / "runs")
