"""From Python: ``automl.fit`` trains as ``python -m automl`` does, from a DataFrame or a
data file, and returns the trained model with its run's tables.

The data goes through ingest (types, contract and task inferred, a data set YAML written
to ``conf_dir``), then the training config is composed by Hydra's compose API with the
same overrides the command line takes, so

    automl.fit(frame, target="y", name="churn", model="auto", time_budget=60)

and ``python -m automl --config-dir automl_conf dataset=churn model=auto
search.time_budget=60`` train the same model, into the same kind of run directory. No
global Hydra state is left behind and the working directory never changes, so ``fit``
may be called again, and from several threads.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from automl.bundle.model import Model
from automl.config import COMMON, check_name, compose_config
from automl.errors import ConfigError
from automl.redact import RedactingFilter, redact

log = logging.getLogger(__name__)

GROUPS = (
    "dataset", "features", "search", "model", "evaluation", "tracking", "registry",
    "monitoring", "experiment", "paths",
)  # fmt: skip
PLAIN = re.compile(r"[\w./:+-]+")  # override values that need no quotes


class Trained:
    """A trained model and its run: ``predict``, ``predict_proba``, ``score`` and
    ``explain`` as a bundle's (:class:`automl.Model`), plus ``metrics``, ``run_dir``,
    ``leaderboard()`` (every search trial) and ``families()`` (the best of each family)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.model = Model.load(self.run_dir / "model")
        self.metrics: dict[str, float] = dict(self.model.manifest.get("metrics") or {})

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"Trained({self.model.manifest['dataset']}, {self.family}: {shown})"

    @property
    def family(self) -> str:
        return str(self.model.manifest["model_family"])

    def leaderboard(self) -> pd.DataFrame:
        """Every search trial: family, parameters, CV score and seconds, best first."""
        return pd.read_csv(self.run_dir / "leaderboard.csv")

    def families(self) -> pd.DataFrame:
        """Per model family: its best CV score, trials and seconds."""
        return pd.read_csv(self.run_dir / "families.csv")

    def predict(self, frame: pd.DataFrame) -> Any:
        """Class labels, or values for regression (rows checked against the contract)."""
        return self.model.predict(frame)

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, one column per class."""
        return self.model.predict_proba(frame)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``prediction`` and ``proba_<class>`` columns, as the batch scorer writes them."""
        return self.model.score(frame)

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row contributions of each input column (see ``Model.explain``)."""
        return self.model.explain(frame)


def fit(
    data: pd.DataFrame | str | Path,
    target: str,
    *,
    task: str | None = None,
    name: str | None = None,
    overrides: Sequence[str] = (),
    ingest: Sequence[str] = (),
    conf_dir: str | Path = "automl_conf",
    **keys: Any,
) -> Trained:
    """Train on ``data`` (a DataFrame, or a file/URL ingest reads) to predict ``target``.

    ``task``: binary, multiclass or regression (None: inferred). ``name``: the data set's
    name (its YAML in ``conf_dir``, its registry name ``<project>.<name>``); by default the
    file's stem, or ``data`` for a frame. ``overrides``: command-line overrides
    (``["model=auto", "search.time_budget=60"]``); ``keys``: the same as keywords, a group
    (``model="auto"``), a full key (``**{"search.time_budget": 60}``) or a key's last part
    when it names one key (``time_budget=60``). ``ingest``: overrides of the ingest step
    (``python -m automl.ingest``'s keys, e.g. ``["contract.range_margin=null"]``).
    """
    name = check_name(name or default_name(data))
    conf_dir = Path(conf_dir).expanduser().resolve()
    ingest_data(data, target, task, name, conf_dir, list(ingest))
    cfg, run_dir, given, log_format = compose_run(conf_dir, name, list(overrides), keys)
    from automl.services.training import train

    with RUN_LOGS.to(run_dir, log_format):
        save_config(cfg, run_dir, given)
        train(cfg, run_dir)
    return Trained(run_dir)


def default_name(data: Any) -> str:
    if isinstance(data, pd.DataFrame):
        return "data"
    stem = Path(str(data).split("?")[0]).name.split(".")[0]
    return re.sub(r"^[.-]|[^A-Za-z0-9_.-]", "_", stem) or "data"


def ingest_data(
    data: Any, target: str, task: str | None, name: str, conf_dir: Path, overrides: list[str]
) -> None:
    """Ingest ``data`` as data set ``name`` into ``conf_dir`` (a frame through a Parquet
    copy in a temporary folder, removed afterwards), with the ingest ``overrides``."""
    from automl.services.ingest import ingest

    with tempfile.TemporaryDirectory(prefix="automl-fit-") as folder:
        source = data
        if isinstance(data, pd.DataFrame):
            if len(data) == 0:
                raise ConfigError("fit: the DataFrame has no rows")
            source = Path(folder) / f"{name}.parquet"
            data.set_axis([str(c) for c in data.columns], axis=1).to_parquet(source)
        cfg = compose_config(
            "automl.conf.apps", "ingest",
            ["input=x", "target=x", f"name={name}", "progress=false", "report.enabled=false",
             *overrides],
        )  # fmt: skip
        cfg.input, cfg.target = literal(str(source)), literal(str(target))
        cfg.conf_dir, cfg.task = literal(str(conf_dir)), task
        ingest(cfg)


def literal(text: str) -> str:
    """``text`` as a config value that OmegaConf never reads as an interpolation."""
    return text.replace("${", "\\${")


def compose_run(
    conf_dir: Path, name: str, overrides: list[str], keys: dict[str, Any]
) -> tuple[DictConfig, Path, list[str], str]:
    """The training config (without its ``hydra`` node), the run directory, and the
    overrides as the command line would give them."""
    search_path = f"hydra.searchpath=[pkg://{COMMON},file://{conf_dir}]"
    groups = [f"{k}={value(v)}" for k, v in keys.items() if k in GROUPS]
    given = [f"dataset={name}", *overrides, *groups]
    if len(groups) < len(keys):  # short keys: found in the config these overrides compose
        composed = compose_config("automl.conf", "train", [search_path, *given])
        given += [f"{full_key(composed, k)}={value(v)}" for k, v in keys.items() if k not in GROUPS]
    cfg = compose_config("automl.conf", "train", [search_path, *given], with_hydra=True)
    run_dir = Path(cfg.hydra.run.dir)
    log_format = str(cfg.hydra.job_logging.formatters.file.format)  # as the command's log
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, run_dir, given, log_format


def full_key(cfg: DictConfig, key: str) -> str:
    """``key`` as a full config key: itself when it has a dot or is a top-level key, else
    the shortest key of the config ending in ``.<key>`` (refused when that is ambiguous)."""
    if "." in key or key in cfg:
        return key
    found = sorted(
        (path for path in leaf_keys(OmegaConf.to_container(cfg, resolve=False))
         if path.rsplit(".", 1)[-1] == key),
        key=lambda path: path.count("."),
    )  # fmt: skip
    if not found:
        raise ConfigError(f"fit: no config key is named {key!r}")
    shortest = [p for p in found if p.count(".") == found[0].count(".")]
    if len(shortest) > 1:
        raise ConfigError(f"fit: {key!r} could be {', '.join(shortest)}: give the full key")
    return found[0]


def leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key of a plain config, dotted, including those holding lists or dicts."""
    if isinstance(node, dict):
        for key, child in node.items():
            path = f"{prefix}{key}"
            yield path
            yield from leaf_keys(child, path + ".")


def value(item: Any) -> str:
    """A Python value written in Hydra's override grammar."""
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        return repr(item)
    if isinstance(item, list | tuple):
        return "[" + ",".join(value(v) for v in item) + "]"
    if isinstance(item, dict):
        return "{" + ",".join(f"{k}:{value(v)}" for k, v in item.items()) + "}"
    text = str(item)
    if PLAIN.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def save_config(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> None:
    """``.hydra/config.yaml`` and ``overrides.yaml`` as the command writes them (secrets
    masked): what makes the folder a run for the run index and the dashboard."""
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    plain = redact(OmegaConf.to_container(cfg, resolve=False))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))
    (folder / "overrides.yaml").write_text(yaml.safe_dump(redact(list(overrides))))


class RunLogs:
    """Each running fit's own ``train.log``: the ``automl`` logger at INFO and the
    per-trial logger ``automl.trials`` at DEBUG (into the log file only, as the command's
    logging config has it) while any fit runs, then both as they were."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.saved: list[tuple[logging.Logger, int, bool]] = []

    @contextlib.contextmanager
    def to(self, run_dir: Path, log_format: str) -> Iterator[None]:
        """While it runs, this thread's log records also go to ``run_dir/train.log``,
        formatted as ``log_format`` (secrets masked); nothing is left attached."""
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter(log_format))
        handler.addFilter(RedactingFilter())
        thread = threading.get_ident()
        handler.addFilter(lambda record: record.thread == thread)
        loggers = {logging.getLogger("automl"): logging.INFO}
        loggers[logging.getLogger("automl.trials")] = logging.DEBUG
        with self.lock:
            if self.running == 0:
                self.saved = [(lg, lg.level, lg.propagate) for lg in loggers]
                for logger, level in loggers.items():
                    logger.setLevel(level)
                logging.getLogger("automl.trials").propagate = False
            self.running += 1
            for logger in loggers:
                logger.addHandler(handler)
        try:
            yield
        finally:
            with self.lock:
                for logger in loggers:
                    logger.removeHandler(handler)
                self.running -= 1
                if self.running == 0:
                    for logger, level, propagate in self.saved:
                        logger.setLevel(level)
                        logger.propagate = propagate
            handler.close()


RUN_LOGS = RunLogs()
