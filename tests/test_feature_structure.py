"""Feature steps across all features (interactions, selection, decomposition): composed
independently of the blocks from YAML, searched with the model, fitted inside the CV
folds (a shuffled-target control shows the leak they avoid), and a user's own step added
by YAML only, trained, scored by predict and served."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from helpers import FAST, ROOT, compose_train, needs_shared_data, run_cli
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from automl import load_model
from automl.config import compose_config
from automl.errors import ConfigError
from automl.features import feature_space, feature_steps
from automl.search.fit import make_families

ACROSS = {  # group -> its options (besides none)
    kind: sorted(p.stem for p in (ROOT / "conf" / "features" / kind).glob("*.yaml"))
    for kind in ("interactions", "selection", "decomposition")
}


def test_at_least_fourteen_techniques_are_selectable_and_described(train_config):
    """The blocks' step classes of the shipped feature sets and the across options, each
    option file opening with its one-line description (as docs/features.md lists them)."""
    across = [(k, o) for k, options in ACROSS.items() for o in options if o != "none"]
    steps = set()
    for path in (ROOT / "conf" / "features").glob("*.yaml"):
        for block in train_config([f"features={path.stem}"]).features.blocks.values():
            steps |= {step._target_ for step in block.steps}
    assert len(across) >= 11 and len(steps) >= 14, (across, steps)
    documented = (ROOT / "docs" / "features.md").read_text()
    for kind, option in across:
        text = (ROOT / "conf" / "features" / kind / f"{option}.yaml").read_text()
        assert text.startswith("# ") and len(text.splitlines()[0]) > 20, (kind, option)
        assert f"`features/{kind}={option}`" in documented, (kind, option)


def test_a_block_choice_and_across_choices_compose_independently(train_config):
    cfg = train_config(
        ["features=robust", "features/selection=anova", "features/decomposition=svd"]
    )
    steps = feature_steps(cfg.features)
    assert [name for name, _ in steps] == ["features", "selection", "decomposition"]
    assert "numeric_bins" in dict(steps)["features"].get_params()["transformers"][1]
    space = feature_space(cfg.features)
    assert set(space) == {"selection__step__k", "decomposition__step__n_components"}
    plain = train_config(["features=robust"])
    assert [name for name, _ in feature_steps(plain.features)] == ["features"]


def test_across_steps_refuse_pandas_categoricals_with_a_clear_error(train_config):
    cfg = train_config(["features=none", "features/selection=variance"])
    with pytest.raises(ConfigError, match="features.selection works on numeric features"):
        feature_steps(cfg.features)


def test_chi2_selection_on_a_regression_target_is_refused_before_the_search(tmp_path):
    """The CLI exits non-zero with the config's own words before any trial, and leaves no
    run behind; on a class target the same option builds."""
    out = tmp_path / "outputs"
    done = run_cli(
        "automl", "dataset=diabetes", "model=linear", "features/selection=chi2", *FAST,
        f"paths.output_dir={out}",
    )  # fmt: skip
    assert done.returncode != 0
    said = done.stdout + done.stderr
    (message,) = [line for line in said.splitlines() if "ERROR" in line]
    assert "features.selection" in message and "features/selection=anova" in message, message
    assert "trial" not in said and not list(out.glob("runs/*/*/model"))
    classes = compose_train(["dataset=breast_cancer", "features/selection=chi2"])
    assert [name for name, _ in feature_steps(classes.features, task="binary")][-1] == ("selection")


@pytest.mark.parametrize(("kind", "option"), [(k, o) for k, os in ACROSS.items() for o in os])
def test_every_option_builds_fits_and_names_its_outputs(kind, option, train_config):
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    cfg = train_config(["features=default", f"features/{kind}={option}"])
    pipeline = Pipeline(feature_steps(cfg.features))
    out = pipeline.fit_transform(X, y)
    assert np.isfinite(np.asarray(out, dtype=float)).all()
    assert len(pipeline.get_feature_names_out()) == out.shape[1]
    if option == "none":
        assert out.shape[1] == 30  # no step: the blocks' output


def shuffled_target_auc(pipeline_for, seeds=range(5)) -> float:
    """Mean CV AUC over shuffled targets on 150 rows of digits (64 features)."""
    X = load_digits(as_frame=True).data.head(150)
    scores = []
    for seed in seeds:
        y = np.random.default_rng(seed).permutation(np.arange(150) % 2)
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        scores.append(cross_val_score(pipeline_for(X, y), X, y, cv=folds, scoring="roc_auc").mean())
    return float(np.mean(scores))


def test_selection_is_fitted_inside_the_folds_a_leaky_one_would_score_on_noise(train_config):
    """On a shuffled target there is nothing to learn (AUC 0.5). Selecting features on all
    rows before the folds leaks the validation rows into the choice and scores higher;
    the pipeline's own selection (fitted per fold, as the search does) does not."""
    cfg = train_config(
        ["features=minimal", "features/selection=anova", "features.selection.step.k=5"]
    )
    model = LogisticRegression(max_iter=1000)

    def ours(X, y):
        return Pipeline([*feature_steps(cfg.features), ("model", model)])

    def leaky(X, y):
        chosen = SelectKBest(f_classif, k=5).fit(X.to_numpy(), y).get_support()
        return Pipeline([("chosen", ColumnsKept(chosen)), ("model", model)])

    honest, leaked = shuffled_target_auc(ours), shuffled_target_auc(leaky)
    print(f"shuffled-target AUC: in folds {honest:.3f}, selected before the folds {leaked:.3f}")
    assert leaked > honest + 0.08
    assert abs(honest - 0.5) < 0.08


class ColumnsKept:
    """The leaky control: columns chosen beforehand (on every row), then kept."""

    def __init__(self, mask):
        self.mask = mask

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X)[:, self.mask]

    def get_params(self, deep=True):
        return {"mask": self.mask}

    def set_params(self, **params):
        self.mask = params.get("mask", self.mask)
        return self


def test_a_users_own_step_by_yaml_only_trains_predicts_and_serves(tmp_path):
    """A selection option of the user's own (a config dir, no code) whose ``enabled`` and
    ``percentile`` are searched; the bundle predicts from the CLI and the server, whose
    fast path compiles the selector (any scikit-learn ``SelectorMixin``: kept columns)."""
    own = tmp_path / "my_conf" / "features" / "selection"
    own.mkdir(parents=True)
    (own / "top_percent.yaml").write_text(
        yaml.safe_dump(
            {
                "step": {
                    "_target_": "sklearn.feature_selection.SelectPercentile",
                    "score_func": {
                        "_target_": "hydra.utils.get_method",
                        "path": "sklearn.feature_selection.f_classif",
                    },
                    "percentile": 50,
                },
                "space": {
                    "enabled": {"type": "categorical", "choices": [True, False]},
                    "percentile": {"type": "int", "low": 10, "high": 90},
                },
            }
        )
    )
    out = tmp_path / "outputs"
    done = run_cli(
        "automl", "--config-dir", str(tmp_path / "my_conf"), "dataset=breast_cancer",
        "model=linear", "features/selection=top_percent", *FAST, "search.n_trials=4",
        f"paths.output_dir={out}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run = next((out / "runs").glob("*/*"))
    board = (run / "leaderboard.csv").read_text().splitlines()[0]
    assert "enabled" in board and "percentile" in board
    rows = load_breast_cancer(as_frame=True).data.head(20)
    rows.to_csv(tmp_path / "in.csv", index=False)
    scored = run_cli(
        "automl.predict", f"model={run}", f"input={tmp_path / 'in.csv'}",
        f"output={tmp_path / 'out.csv'}", f"paths.output_dir={out}",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 21
    from automl.serving.app import create_app

    cfg = compose_config(
        "automl.conf.apps", "serve", [f"paths.output_dir={out}", "metrics.public=true"]
    )
    team = {"projects": ["default"], "users": {"u": {"roles": {"default": "viewer"}}}}
    from helpers import set_up_team

    db = set_up_team(tmp_path, team)
    cfg.auth.url = db["db"]
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
        key = {"X-API-Key": db["keys"]["u"]}
        answer = client.post(
            "/v1/models/default.breast_cancer/predict",
            json=json.loads(rows.head(2).to_json(orient="records")),
            headers=key,
        )
        assert answer.status_code == 200, answer.text
        meta = client.get("/v1/models/default.breast_cancer/metadata", headers=key).json()
        assert meta["fast_path"] == "compiled", meta["fast_path"]
        model = load_model(run / "model")
        want = model.predict_proba(rows.head(2))
        got = [[p[c] for c in model.classes] for p in answer.json()["probabilities"]]
        np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-9)


def test_model_auto_lists_feature_sets_per_family_each_a_portfolio_family(train_config):
    """``model.candidates.<family>.features`` (shipped in ``model=auto_features``, or
    added from the command line): one portfolio family per feature set, with that set's
    steps and space; the other families keep the run's ``features``."""
    cfg = train_config(
        ["model=auto_features", "features=minimal",
         "+features@model.candidates.lgbm.features.hashed=hashing",
         "features/selection@model.candidates.linear.features.default.selection=anova"]
    )  # fmt: skip
    families = make_families(cfg, "binary", threads=1)
    names = set(families)
    assert {"linear+default", "linear+robust", "linear+target_encoding", "lgbm+hashed"} <= names
    assert "linear" not in names and "lgbm" not in names and "xgb" in names

    def encoders(pipeline):
        return [repr(block) for _, block, _ in pipeline[0].transformers]

    assert "TargetEncoder" in str(encoders(families["linear+target_encoding"].pipeline))
    run_features = Pipeline(feature_steps(cfg.features))  # features=minimal
    assert encoders(families["xgb"].pipeline) == encoders(run_features)
    assert "linear+default.k" in families["linear+default"].space  # its own selection
    assert "lgbm+hashed.n_features" in families["lgbm+hashed"].space  # the hashing width
    assert not any(k.endswith(".k") for k in families["linear+robust"].space)


@needs_shared_data
def test_feature_sets_per_family_are_searched_and_the_model_scores(tmp_path):
    """A run of ``model=auto_features`` on real data with categoricals: each (family,
    feature set) gets trials, and the bundle predicts from the CLI."""
    out = tmp_path / "outputs"
    done = run_cli(
        "automl", "dataset=abalone", "model=auto_features",
        "model.families=[lgbm_default,linear]", "search.time_budget=null",
        "search.n_trials=4", "search.n_jobs=1", "evaluation.plots=false", "tracking=none",
        f"paths.output_dir={out}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    run = next((out / "runs").glob("*/*"))
    families = (run / "families.csv").read_text()
    for name in ("lgbm_default", "linear+default", "linear+robust", "linear+target_encoding"):
        assert f"\n{name}," in families, families
    rows = tmp_path / "in.csv"
    model = load_model(run / "model")
    frame = pd.DataFrame(
        {"sex": ["M", "F", "I"], "length": [0.5, 0.4, 0.3], "diameter": [0.4, 0.3, 0.2],
         "height": [0.1, 0.1, 0.08], "whole_weight": [0.5, 0.4, 0.2],
         "shucked_weight": [0.2, 0.2, 0.1], "viscera_weight": [0.1, 0.08, 0.05],
         "shell_weight": [0.15, 0.12, 0.07]}
    )  # fmt: skip
    frame.to_csv(rows, index=False)
    scored = run_cli(
        "automl.predict", f"model={run}", f"input={rows}", f"output={tmp_path / 'out.csv'}",
        f"paths.output_dir={out}",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    predicted = pd.read_csv(tmp_path / "out.csv")["prediction"].to_numpy()
    np.testing.assert_allclose(predicted, np.asarray(model.predict(frame), dtype=float))
