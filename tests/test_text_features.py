"""Free-text columns: ingest keeps them, the feature sets' ``text`` block turns each into
TF-IDF + truncated SVD, and the model predicts from the CLI and the server.

The shipped data sets have no free-text column, so the notes here are written from the
real adult records (occupation, sector, education, marital status and hours as a
sentence, in varied wording): the signal they carry is adult's own, and the categorical
columns they describe are left out, so it can only reach the model through the text.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers import ADULT_COLUMNS, FAST, SHARED_DATA, needs_shared_data, run_cli, set_up_team

from automl.config import compose_config
from automl.features import StringColumns, TextEncoder

OPENINGS = ("Works as", "Employed in", "Job:", "Currently doing")


def adult_with_notes(rows: int, seed: int = 0) -> pd.DataFrame:
    """Adult rows as age, a free-text note (missing in 5 % of rows) and the income label."""
    adult = pd.read_csv(
        SHARED_DATA / "adult-train.csv", header=None, names=ADULT_COLUMNS, skipinitialspace=True
    ).sample(rows, random_state=seed)
    rng = np.random.default_rng(seed)
    openings = rng.choice(OPENINGS, size=rows)
    notes = [
        f"{opening} {r.occupation.replace('-', ' ')} in the {r.workclass.replace('-', ' ')} "
        f"sector; education {r.education}; {r['marital-status'].replace('-', ' ')}; "
        f"about {r['hours-per-week']} hours a week"
        for opening, (_, r) in zip(openings, adult.iterrows(), strict=True)
    ]
    frame = pd.DataFrame(
        {"age": adult["age"].to_numpy(), "note": notes, "income": adult["income"].to_numpy()}
    )
    frame.loc[rng.random(rows) < 0.05, "note"] = None  # some rows have no note
    return frame


@pytest.fixture(scope="module")
def notes() -> pd.DataFrame:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return adult_with_notes(3000)


def test_text_encoder_width_names_determinism_and_awkward_rows(notes):
    frame = notes[["note"]].assign(other=notes["note"].str.upper())
    encoder = TextEncoder(n_components=8, random_state=3).fit(frame.head(2000))
    out = encoder.transform(frame.tail(1000))
    assert out.shape == (1000, 16) and np.isfinite(out).all()
    names = list(encoder.get_feature_names_out())
    assert names[:2] == ["note_svd0", "note_svd1"] and names[-1] == "other_svd7"
    again = TextEncoder(n_components=8, random_state=3).fit(frame.head(2000))
    np.testing.assert_allclose(again.transform(frame.tail(1000)), out)
    odd = pd.DataFrame(
        {"note": [None, "", "zyzzyva quux blorf", "Works as Sales"], "other": [None] * 4}
    )
    scored = encoder.transform(odd)
    assert np.isfinite(scored).all()
    np.testing.assert_allclose(scored[:3, :8], 0.0, atol=1e-12)  # no known word: the origin
    assert np.abs(scored[3, :8]).sum() > 0


def test_text_encoder_terms_without_svd_and_a_column_with_no_words(notes):
    frame = notes[["note"]].head(500).assign(blank=None)
    encoder = TextEncoder(n_components=None, max_features=40).fit(frame)
    names = list(encoder.get_feature_names_out())
    assert len(names) == 41 and names[-1] == "blank_empty"
    assert "note=about" in names and all(n.startswith("note=") for n in names[:-1])
    out = encoder.transform(frame)
    assert out.shape == (500, 41) and (out[:, -1] == 0).all()
    rows = np.linalg.norm(out[:, :-1], axis=1)
    np.testing.assert_allclose(rows[rows > 0], 1.0)  # TF-IDF rows are unit length


def test_string_columns_split_free_text_from_categories(notes):
    frame = notes.drop(columns="income").assign(
        sector=np.where(notes["age"] > 40, "private", "public")
    )
    frame["code"] = [f"ID-{i:08d}-{i * 7919 % 10_000:04d}-XYZ-long-code" for i in range(len(frame))]
    assert StringColumns(free_text=True)(frame) == ["note"]
    assert StringColumns()(frame) == ["sector", "code"]  # long codes have no words


@pytest.mark.slow  # ~27 s end to end; the text steps' own tests are the default run's
@needs_shared_data
def test_ingested_free_text_is_a_feature_the_model_learns_from(tmp_path, notes):
    """Ingest keeps the note (kind text, not dropped); the text block carries the signal
    (AUC well above the same run with the note dropped); predict and the server score
    rows with missing and unseen text."""
    notes.to_csv(tmp_path / "notes.csv", index=False)
    conf = tmp_path / "conf"
    ingested = run_cli(
        "automl.ingest", f"input={tmp_path / 'notes.csv'}", "target=income", "name=notes",
        f"conf_dir={conf}", "progress=false", "report.enabled=false",
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr[-2000:]
    spec = yaml.safe_load((conf / "dataset" / "notes.yaml").read_text())
    assert spec["clean"]["drop"] == [] and "note" in spec["contract"]["columns"]
    assert "note" in ingested.stdout + ingested.stderr and "free text" in (
        ingested.stdout + ingested.stderr
    )

    def auc(*overrides: str) -> tuple[float, str]:
        out = tmp_path / f"out{len(overrides)}"
        done = run_cli(
            "automl", "--config-dir", str(conf), "dataset=notes", "model=linear", *FAST,
            f"paths.output_dir={out}", *overrides,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        run = next((out / "runs").glob("*/*"))
        return json.loads((run / "metrics.json").read_text())["auc"], str(run)

    with_text, run = auc()
    without_text, _ = auc("dataset.clean.drop=[note]", "~dataset.contract.columns.note")
    print(f"test AUC with the note {with_text:.4f}, without it {without_text:.4f}")
    assert with_text > without_text + 0.05, (with_text, without_text)

    rows = notes.drop(columns="income").head(4).copy()
    rows.loc[rows.index[1], "note"] = None
    rows.loc[rows.index[2], "note"] = "an entirely new wording nobody used before"
    rows.to_csv(tmp_path / "in.csv", index=False)
    scored = run_cli(
        "automl.predict", f"model={run}", f"input={tmp_path / 'in.csv'}",
        f"output={tmp_path / 'out.csv'}", f"paths.output_dir={tmp_path / 'out0'}",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    predicted = pd.read_csv(tmp_path / "out.csv")
    assert len(predicted) == 4 and predicted.filter(like="proba").notna().all().all()

    cfg = compose_config("automl.conf.apps", "serve", [f"paths.output_dir={tmp_path / 'out0'}"])
    db = set_up_team(
        tmp_path, {"projects": ["default"], "users": {"u": {"roles": {"default": "viewer"}}}}
    )
    cfg.auth.url = db["db"]
    from automl.serving.app import create_app

    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
        key = {"X-API-Key": db["keys"]["u"]}
        answer = client.post(
            "/v1/models/default.notes/predict",
            json=json.loads(rows.to_json(orient="records")),
            headers=key,
        )
        assert answer.status_code == 200, answer.text
        served = [p[">50K"] for p in answer.json()["probabilities"]]
        np.testing.assert_allclose(served, predicted["proba_>50K"], rtol=1e-9)
        assert answer.json()["path"] == "pipeline"  # the text block is not compiled
        meta = client.get("/v1/models/default.notes/metadata", headers=key).json()
        assert "TextEncoder" in meta["fast_path"], meta["fast_path"]
