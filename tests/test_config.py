"""Every config group composes; schemas reject typos; the CLI explains itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import EMBEDDED_DATASETS, FILE_DATASETS, MODELS, ROOT, run_cli
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from automl.config import build
from automl.errors import ConfigError

GROUPS = ("dataset", "features", "model", "search", "evaluation", "experiment")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def test_shipped_options_are_the_documented_ones():
    assert set(options("dataset")) == set(EMBEDDED_DATASETS) | set(FILE_DATASETS)
    assert set(options("model")) == set(MODELS) | {"auto", "auto_features"}
    assert {"default", "minimal", "none"} <= set(options("features"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=str)
def test_every_option_composes(group, option, train_config):
    cfg = train_config([f"{group}={option}"])
    assert cfg.dataset.name and cfg.model.name and cfg.features.name


@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_both_estimators(model, train_config):
    cfg = train_config([f"model={model}"])
    assert hasattr(build(cfg.model.classifier), "predict_proba")
    assert hasattr(build(cfg.model.regressor), "predict")


def test_typo_in_override_names_the_key(train_config):
    with pytest.raises(ConfigCompositionException, match="n_trial"):
        train_config(["search.n_trial=3"])


def test_wrong_type_names_the_key(train_config):
    with pytest.raises(ConfigCompositionException, match="n_trials"):
        train_config(["search.n_trials=many"])


def test_typo_in_a_users_dataset_file_names_the_key(tmp_path: Path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "typo.yaml").write_text(
        "name: typo\ntarget: y\ntaks: binary\nsource: {_target_: x}\n"
    )
    result = run_cli("automl", "--config-dir", str(tmp_path), "dataset=typo")
    assert result.returncode != 0
    assert "taks" in result.stderr


def test_build_names_the_key_of_a_bad_target(train_config):
    cfg = train_config(["model.classifier._target_=sklearn.nothing.Here"])
    with pytest.raises(ConfigError, match="model.classifier"):
        build(cfg.model.classifier)


def test_cfg_job_prints_the_composed_config():
    result = run_cli("automl", "dataset=wine", "model=rf", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert "name: wine" in result.stdout and "RandomForestClassifier" in result.stdout


def test_help_lists_groups_and_options():
    result = run_cli("automl", "--help")
    assert result.returncode == 0, result.stderr
    for group in GROUPS:
        assert f"{group}:" in result.stdout
    assert "adult, breast_cancer" in result.stdout
    assert "lgbm" in result.stdout


def test_plain_keys_are_validated_too(train_config):
    with pytest.raises((ConfigKeyError, ValidationError, ConfigCompositionException)):
        train_config(["evaluation.test_size=big"])


def test_the_default_training_config_resolves(cfg_train):
    """The composition fixture: the default run, every interpolation resolvable."""
    resolved = OmegaConf.to_container(cfg_train, resolve=True)
    assert (resolved["dataset"]["name"], resolved["model"]["name"]) == ("breast_cancer", "lgbm")
    assert resolved["registry"]["uri"].endswith("registry/registry.db")
