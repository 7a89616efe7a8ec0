"""Secrets out of everything the product writes: ``***`` in place of a URL's password
(``postgresql://me:***@db/x``), a secret query parameter or ``key=value`` pair
(``?password=***``, ``token=***``) and the value of a config key named like a secret
(``password``, ``signing_key``, ``*_token`` ...).

Applied wherever a config, manifest, MLflow param, report, log line or error message is
written: ``redact`` for data (configs, manifests), ``redact_text`` for text, and
``RedactingFilter`` on every log handler (``conf/common/hydra/job_logging/automl.yaml``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
SECRET_NAMES = r"password|passwd|pwd|secret|token|api_key|apikey|signing_key|sig|signature"
SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|secret|token|api_key|apikey|signing_key|private_key|access_key)$",
    re.IGNORECASE,
)
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^\s:/@?#'\"]*:)([^\s@/'\"]+)(@)", re.I)
PAIR = re.compile(rf"(\b[\w.\-]*?(?:{SECRET_NAMES})=)([^\s&;'\",]+)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret ``name=value`` pairs masked."""
    if "=" not in text and "@" not in text:
        return text
    return PAIR.sub(rf"\g<1>{MASK}", URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text))


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (plain data: dicts, lists, scalars) with secrets masked: the
    strings by :func:`redact_text`, and any non-empty value under a secret-named key."""
    secret = key is not None and SECRET_KEY.search(key) and value not in (None, "")
    if secret and not isinstance(value, dict | list | tuple):
        return MASK
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """A log filter that masks secrets in each record's final message (and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
