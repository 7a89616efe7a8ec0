"""Every option of every config group, in every command's config, composes; every
``_target_`` node in it builds. A typo in any shipped YAML fails here, in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra._internal.utils import _locate
from omegaconf import DictConfig, ListConfig, OmegaConf

from automl.config import build, compose_config
from automl.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
# Each command's primary config, with the values it requires on the command line.
COMMANDS = {
    "train": ("automl.conf", "train", []),
    "predict": ("automl.conf.apps", "predict", ["model=m", "input=in.csv", "output=out.csv"]),
    "monitor": ("automl.conf.apps", "monitor", ["model=m", "input=in.csv"]),
    "ingest": ("automl.conf.apps", "ingest", ["input=in.csv", "target=y", "name=n"]),
    "serve": ("automl.conf.apps", "serve", []),
    "backup": ("automl.conf.apps", "backup", []),
}
NOT_GROUPS = {"apps", "common", "hydra", "__pycache__"}


def group_options() -> dict[str, list[str]]:
    """Every config group of the tree (conf/ and conf/common/) with its options."""
    found = {}
    for base in (CONF, CONF / "common"):
        for folder in sorted(base.iterdir()):
            if folder.is_dir() and folder.name not in NOT_GROUPS:
                found[folder.name] = sorted(p.stem for p in folder.glob("*.yaml"))
    return found


def compositions() -> list[tuple[str, str, str]]:
    """(command, group, option) for every option of every group a command composes."""
    cases = []
    for command, (module, name, required) in COMMANDS.items():
        composed = compose_config(module, name, required)
        for group, options in group_options().items():
            if group in composed or (command == "train" and group == "experiment"):
                cases += [(command, group, option) for option in options]
    return cases


def target_nodes(node: object) -> Iterator[DictConfig]:
    """The outermost nodes with ``_target_`` under ``node`` (building one builds its
    inner ones too)."""
    if OmegaConf.is_config(node) and node._is_none():
        return
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield node
            return
        for key in node:
            yield from target_nodes(node._get_node(key))
    elif isinstance(node, ListConfig):
        for item in node:
            yield from target_nodes(item)


def build_all(cfg: DictConfig) -> int:
    """Build every ``_target_`` node of ``cfg`` (each distinct one once); how many."""
    seen = set()
    for node in target_nodes(cfg):
        text = OmegaConf.to_yaml(node, resolve=True)
        if text not in seen:
            seen.add(text)
            build(node)
    return len(seen)


@pytest.mark.parametrize(("command", "group", "option"), compositions())
def test_every_option_composes_and_every_target_builds(command, group, option):
    module, name, required = COMMANDS[command]
    cfg = compose_config(module, name, [*required, f"{group}={option}"])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert build_all(cfg) >= 0


@pytest.mark.parametrize("command", COMMANDS)
def test_every_commands_config_composes_and_builds(command):
    module, name, required = COMMANDS[command]
    cfg = compose_config(module, name, required)
    OmegaConf.to_container(cfg, resolve=True)
    build_all(cfg)


def yaml_files() -> list[Path]:
    return sorted(CONF.rglob("*.yaml"))


def raw_targets(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield node["_target_"]
        for value in node.values():
            yield from raw_targets(value)
    elif isinstance(node, list):
        for item in node:
            yield from raw_targets(item)


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(CONF)))
def test_every_target_in_every_yaml_file_exists(path):
    """Also the targets of options no command composes by default (e.g. a formats entry
    or a test listed in a catalog)."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    for target in raw_targets(raw):
        _locate(target)  # raises ImportError naming the target


def test_a_misspelt_target_fails_the_check(tmp_path):
    """The check above can fail: a user's group option with a typo'd target."""
    (tmp_path / "tracking").mkdir()
    (tmp_path / "tracking" / "typo.yaml").write_text("_target_: automl.tracking.NoTrackin\n")
    overrides = [f"hydra.searchpath=[pkg://automl.conf.common,file://{tmp_path}]"]
    cfg = compose_config("automl.conf", "train", [*overrides, "tracking=typo"])
    with pytest.raises(ConfigError, match="NoTrackin"):
        build_all(cfg)
    with pytest.raises(ImportError, match="NoTrackin"):
        for target in raw_targets({"tracking": {"_target_": "automl.tracking.NoTrackin"}}):
            _locate(target)
