"""Live progress of the search: what the loop has done so far, while it runs.

``run_portfolio`` calls :meth:`SearchProgress.trial` for every finished trial and
:meth:`SearchProgress.close` at the end. On a terminal (stderr is a TTY) one line updates
in place (tqdm); otherwise (a pipe, a log file) a plain log line is written every
``progress_every`` finished trials. Both say the trials done (of ``search.n_trials``),
the best CV score so far and its family, and the time left in ``search.time_budget``.
``progress=false`` silences both. Every trial also gets one line (number, family, score,
seconds, parameters) at DEBUG on the ``automl.trials`` logger, which the logging config
(``conf/common/hydra/job_logging/automl.yaml``) sends to the run's log file only.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)
trials_log = logging.getLogger("automl.trials")  # one line per trial: the log file only

PARAMS_CHARS = 160  # a trial line's parameters are cut at this length
FALLBACK_WIDTH, FALLBACK_ROWS = 100, 24  # the live line's terminal when its size is unknown
TICK_SECONDS = 1.0  # the live line's clock (time left, elapsed) between trials


class SearchProgress:
    """Reports the search as trials finish: a live line on a terminal, else log lines.

    ``n_trials``: the trial cap (None: none); ``deadline``: the job's time budget as a
    ``time.monotonic()`` time (None: no budget); ``every``: finished trials between two
    plain lines; ``stream``: where the live line goes (stderr).
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        every: int = 10,
        n_trials: int | None = None,
        deadline: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.every = max(1, int(every))
        self.n_trials = n_trials
        self.deadline = deadline
        self.done = 0
        self.best: float | None = None
        self.best_family: str | None = None
        self.stream = stream if stream is not None else sys.stderr
        live = enabled and is_terminal(self.stream)
        self.plain = enabled and not live
        self.bar: tqdm | None = None
        self.patched: list[logging.Handler] = []
        self.stopped = threading.Event()
        self.ticker: threading.Thread | None = None
        if live:
            self.open_bar()

    # -- what the loop calls ------------------------------------------------------------

    def trial(
        self,
        number: int,
        family: str,
        values: dict[str, Any],
        score: float | None,
        seconds: float,
    ) -> None:
        """A trial finished with ``score`` (None: it failed) after ``seconds``."""
        self.done += 1
        if score is not None and (self.best is None or score > self.best):
            self.best, self.best_family = score, family
        outcome = "failed" if score is None else f"{score:.5f}"
        trials_log.debug(
            "trial %d %s: %s in %.2fs %s",
            number,
            family,
            outcome,
            seconds,
            short_params(family, values),
        )
        if self.bar is not None:
            self.bar.set_description_str(self.facts(), refresh=False)
            self.bar.update(1)
        elif self.plain and self.done % self.every == 0:
            log.info("search: %s", self.facts())

    def close(self) -> None:
        """The search is over: the live line is left as it ends, logging is restored."""
        self.stopped.set()
        if self.ticker is not None:
            self.ticker.join()
            self.ticker = None
        if self.bar is not None:
            self.bar.set_description_str(self.facts(), refresh=False)
            self.bar.close()
            self.bar = None
        for handler in self.patched:
            vars(handler).pop("emit", None)  # the class's own emit again
        self.patched = []

    # -- the pieces ---------------------------------------------------------------------

    def facts(self) -> str:
        """Trials done, the best score and family so far, and the time left."""
        if self.n_trials:
            trials = f"{self.done}/{self.n_trials} trials"
        else:
            trials = f"{self.done} trial" + ("" if self.done == 1 else "s")
        parts = [trials]
        if self.best is not None:
            parts.append(f"best CV {self.best:.5f} ({self.best_family})")
        if self.deadline is not None:
            parts.append(f"{max(0.0, self.deadline - time.monotonic()):.0f}s left")
        return ", ".join(parts)

    def open_bar(self) -> None:
        """The live line; console log lines during the search print above it."""
        counted = self.deadline is None and bool(self.n_trials)
        width = terminal_width(self.stream)  # 0: a terminal that does not say (a bare pty)
        self.bar = tqdm(
            total=self.n_trials if counted else None,
            desc=self.facts(),
            file=self.stream,
            dynamic_ncols=bool(width),
            ncols=None if width else FALLBACK_WIDTH,
            nrows=None if width else FALLBACK_ROWS,
            bar_format="search |{bar:16}| {desc} [{elapsed}]" if counted else "search: {desc}",
        )
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and is_terminal(stream):
                handler.emit = above_bar(handler.emit, stream)  # type: ignore[method-assign]
                self.patched.append(handler)
        self.ticker = threading.Thread(target=self.tick, name="automl-progress", daemon=True)
        self.ticker.start()

    def tick(self) -> None:
        """Redraw the live line every ``TICK_SECONDS`` until :meth:`close`."""
        while not self.stopped.wait(TICK_SECONDS):
            bar = self.bar
            if bar is not None:
                bar.set_description_str(self.facts())  # redraws under tqdm's lock


def above_bar(emit: Any, stream: TextIO) -> Any:
    """``emit`` with the live line cleared before and drawn again after."""

    def emit_above(record: logging.LogRecord) -> None:
        with tqdm.external_write_mode(file=stream):
            emit(record)

    return emit_above


def terminal_width(stream: TextIO) -> int:
    """The columns of the terminal ``stream`` writes to (0 when it does not say)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def short_params(family: str, values: dict[str, Any]) -> str:
    """A trial's parameters as ``name=value`` (family prefix dropped, numbers short)."""
    parts = []
    for name, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name.removeprefix(family + '.')}={shown}")
    text = "{" + ", ".join(parts) + "}"
    return text if len(text) <= PARAMS_CHARS else text[: PARAMS_CHARS - 4] + "...}"
