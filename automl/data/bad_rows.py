"""What a job does with rows it cannot use: one vocabulary, one meaning in every command.

``on_bad_rows`` (ingest: rows that do not parse or fit their column's kind; predict and
monitor: rows that break the model's contract) is one of

- ``fail``: the first bad row stops the job with one message naming it; no output;
- ``skip``: bad rows are left out and counted (in the summary and the log line);
- ``quarantine``: bad rows go to the job's rejects file with a ``reason`` column, the
  others go on.
"""

from __future__ import annotations

import logging
from typing import Any

from automl.errors import ConfigError

log = logging.getLogger(__name__)

FAIL, SKIP, QUARANTINE = "fail", "skip", "quarantine"
ON_BAD_ROWS = (FAIL, SKIP, QUARANTINE)
DEPRECATED = {"reject": QUARANTINE}  # predict's older name, still accepted


def check_on_bad_rows(value: Any, key: str = "on_bad_rows") -> str:
    """``value`` checked against the vocabulary (a deprecated alias is translated, with a
    warning); anything else is one ConfigError naming ``key`` and the allowed values."""
    name = str(value)
    if name in DEPRECATED:
        log.warning("%s=%s is deprecated: use %s=%s", key, name, key, DEPRECATED[name])
        return DEPRECATED[name]
    if name not in ON_BAD_ROWS:
        raise ConfigError(f"{key} must be one of {', '.join(ON_BAD_ROWS)}, not {value!r}")
    return name
