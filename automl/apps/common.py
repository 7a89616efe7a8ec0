"""What every entry point shares: schemas registered, user errors shown as one message."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf.errors import OmegaConfBaseException

from automl.errors import AutomlError

log = logging.getLogger("automl")


def run_command(parser: argparse.ArgumentParser, run: Callable[[Any], None], argv: Any) -> int:
    """Parse ``argv`` and ``run`` it: an argparse CLI whose user errors are one line on
    stderr and exit status 1."""
    args = parser.parse_args(argv)
    try:
        run(args)
    except AutomlError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
