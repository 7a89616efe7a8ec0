"""What every command shares: schemas registered, file options expanded, user errors
shown as one message with exit status 1."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from automl.atomic import write_text
from automl.config import file_options, register_schemas
from automl.errors import AutomlError
from automl.redact import redact, redact_text

APPS = "pkg://automl.conf.apps"  # the primary configs of the commands other than training

log = logging.getLogger("automl")


def run_command(parser: argparse.ArgumentParser, run: Callable[[Any], None], argv: Any) -> int:
    """Parse ``argv`` and ``run`` it: an argparse CLI whose user errors are one line on
    stderr and exit status 1."""
    args = parser.parse_args(argv)
    try:
        run(args)
    except AutomlError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return 0


def run_dir() -> Path:
    """The Hydra output directory of the current job (where its artifacts go)."""
    return Path(HydraConfig.get().runtime.output_dir)


def report_user_errors(job: Callable[..., Any], *args: Any) -> Any:
    """Run ``job``; a user error is logged as one message (traceback at debug) and exits 1."""
    try:
        return job(*args)
    except (AutomlError, OmegaConfBaseException) as exc:
        log.debug("details", exc_info=True)
        log.error("%s", exc)
        sys.exit(1)


def redact_hydra_files() -> None:
    """Hydra's copies of this job's config and overrides (``.hydra/*.yaml``, a sweep's
    ``multirun.yaml``), saved before the job starts, rewritten with secrets masked."""
    hydra_cfg = HydraConfig.get()
    files: list[Path] = []
    if hydra_cfg.output_subdir is not None:
        files += (Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir).glob("*.yaml")
    if hydra_cfg.mode == RunMode.MULTIRUN:
        files.append(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    for path in files:
        if path.is_file():
            saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            clean = redact(saved)
            if clean != saved:
                write_text(path, OmegaConf.to_yaml(OmegaConf.create(clean)))


def hydra_app(
    config_path: str, config_name: str
) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Make ``job(cfg)`` a Hydra command composed from ``config_name``: the schemas are
    registered, ``group=<file.yaml>`` options become Hydra options
    (:func:`automl.config.file_options`), and a user error is one message, exit 1."""

    def wrap(job: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @hydra.main(config_path=config_path, config_name=config_name, version_base="1.3")
        def task(cfg: DictConfig) -> Any:
            redact_hydra_files()
            return report_user_errors(job, cfg)

        @functools.wraps(job)
        def main() -> Any:
            register_schemas()
            try:
                sys.argv[1:] = file_options(sys.argv[1:])
            except AutomlError as exc:
                print(f"error: {redact_text(str(exc))}", file=sys.stderr)
                sys.exit(1)
            return task()

        return main

    return wrap
