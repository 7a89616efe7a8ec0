"""The search loop: model families (one, or several with ``model=auto``) in one study.

One Optuna study holds every trial; its ``family`` parameter says which family a trial
fits, and each family's parameters are named ``<family>.<param>``. Trials run in a pool
(``automl.search.pool``): in this process, or in worker processes (``search.n_jobs``) so
that a trial still running when the time budget ends is killed, not waited for. Several
processes share the study through ``search.storage``.

Without a time budget, results are told to the study in the order the trials were
asked, so a fixed ``n_trials`` and seed give the same trials and model on every run.

Which family gets the next trial (cost-aware, after FLAML): first each family's
configured defaults, cheapest family first; then a family is drawn with probability
inversely proportional to its expected cost of improvement: the cost spent on it since
it last improved (at least one trial's cost), multiplied by ``rank_penalty`` for each
family whose best score is better. Cost is seconds under a time budget, trials without.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from automl.errors import AutomlError
from automl.search.pool import InlinePool, TrialOutcome, TrialPool, refit_estimate, worker_name
from automl.search.progress import SearchProgress
from automl.search.space import contains, suggest
from automl.search.study import Heartbeat, build_sampler, open_study

if TYPE_CHECKING:
    from automl.search.shared import SharedPredictions

log = logging.getLogger(__name__)


@dataclass
class Family:
    """One model family's untrained pipeline and its search space."""

    name: str
    pipeline: Pipeline
    space: dict[str, dict[str, Any]]  # Optuna name (<family>.<param>) -> spec
    params: dict[str, str]  # Optuna name -> pipeline parameter
    defaults: dict[str, Any]  # Optuna name -> the configured value (the first trial)
    portfolio: list[dict[str, Any]] = field(default_factory=list)  # the next trials' values

    def start(self, tried: int, with_defaults: bool) -> dict[str, Any]:
        """The fixed values of the family's trial number ``tried`` (0: its first): its
        defaults, then its portfolio's entries in order; afterwards none (sampled)."""
        starts = [self.defaults] if with_defaults else []
        starts += self.portfolio
        return starts[tried] if tried < len(starts) else {}

    def build(self, values: dict[str, Any]) -> Pipeline:
        """The pipeline with a trial's sampled ``values`` set."""
        return clone(self.pipeline).set_params(**{self.params[k]: v for k, v in values.items()})


def make_family(
    name: str,
    pipeline: Pipeline,
    space: dict[str, dict[str, Any]],
    portfolio: list[dict[str, Any]] | None = None,
) -> Family:
    """A family from its pipeline, space ({pipeline parameter: spec}) and portfolio
    ([{space name: value}]: values outside this task's space are left out)."""
    current = pipeline.get_params()
    named = {f"{name}.{param.rsplit('__', 1)[-1]}": param for param in space}
    specs = {optuna_name: space[param] for optuna_name, param in named.items()}
    defaults = {
        k: current[param]
        for k, param in named.items()
        if param in current and contains(specs[k], current[param])
    }
    entries = []
    for entry in portfolio or []:
        values = {f"{name}.{k}": v for k, v in entry.items()}
        values = {k: v for k, v in values.items() if k in specs and contains(specs[k], v)}
        if values and values not in entries and values != defaults:
            entries.append(values)
    return Family(name, pipeline, specs, named, defaults, entries)


@dataclass
class Kept:
    """A finished trial whose out-of-fold predictions are kept for the ensemble."""

    number: int
    family: str
    values: dict[str, Any]
    outcome: TrialOutcome


@dataclass
class PortfolioResult:
    """The search's trials, per-family summary and the best trials' predictions."""

    trials: pd.DataFrame
    families: pd.DataFrame
    kept: list[Kept]  # best first
    seconds: float


@dataclass
class Allocator:
    """Chooses the family of the next trial from the study's finished trials."""

    families: list[str]
    rank_penalty: float
    by_time: bool
    rng: np.random.Generator
    fixed: frozenset[str] = frozenset()  # families with nothing to search: one trial each

    def choose(self, trials: list[optuna.trial.FrozenTrial], time_left: float) -> str | None:
        """The next trial's family; None when no family's trial fits in ``time_left``.
        Trials whose process died (failed for want of a heartbeat) do not count."""
        trials = [t for t in trials if not died(t)]
        tried = {t.params.get("family") for t in trials}
        for name in self.families:  # cheap start: every family's defaults first
            if name not in tried:
                return name
        stats = {n: self.stats(n, trials) for n in self.families if n not in self.fixed}
        alive = {name: s for name, s in stats.items() if s is not None and s[2] < time_left}
        if not alive:  # a shared study: the families' first trials may still run elsewhere
            me = worker_name()
            elsewhere = {
                t.params.get("family")
                for t in trials
                if t.state == TrialState.RUNNING and t.user_attrs.get("worker") != me
            }
            pending = [n for n, s in stats.items() if s is None and n in elsewhere]
            return pending[0] if pending else None
        ranked = sorted(alive, key=lambda n: alive[n][0], reverse=True)
        cost = np.array([alive[n][1] * self.rank_penalty ** ranked.index(n) for n in alive])
        chance = (1 / cost) / np.sum(1 / cost)
        return list(alive)[int(self.rng.choice(len(alive), p=chance))]

    def stats(self, name: str, trials: list[optuna.trial.FrozenTrial]) -> tuple | None:
        """(best score, expected cost of improvement, mean trial seconds) of a family;
        None if none of its trials succeeded."""
        mine = [t for t in trials if t.params.get("family") == name and t.state.is_finished()]
        costs = [self.cost(t) for t in mine]
        done = [i for i, t in enumerate(mine) if t.state == TrialState.COMPLETE]
        if not done:
            return None
        best = max(done, key=lambda i: mine[i].value)
        since_best = sum(costs[best + 1 :])
        seconds = float(np.mean([seconds_of(t) for t in mine]))
        return mine[best].value, max(since_best, float(np.mean(costs))), seconds

    def cost(self, trial: optuna.trial.FrozenTrial) -> float:
        return seconds_of(trial) if self.by_time else 1.0


def died(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial failed because its process stopped (no error, no budget stop)."""
    return trial.state == TrialState.FAIL and not {"error", "stopped"} & trial.user_attrs.keys()


def seconds_of(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.user_attrs.get("seconds", 0.0)) or 1e-3


def run_portfolio(
    families: dict[str, Family],
    pool: InlinePool | TrialPool,
    *,
    cfg: Any,
    order: list[str],
    deadline: float | None,
    finish_seconds: float,
    progress: SearchProgress | None = None,
    shared: SharedPredictions | None = None,
) -> PortfolioResult:
    """Search ``families`` (``cfg``: the search config) with ``pool`` until ``cfg.n_trials``
    trials (this process's), until the sampler has nothing left (a grid), or until
    ``deadline`` (``time.monotonic()``) less the time the refit will need; ``progress``
    is told of each finished trial (None: a silent one). With ``shared``, each trial's
    out-of-fold predictions are shared, and the other processes' best trials join the
    ensemble candidates at the end."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base_sampler = build_sampler(cfg, {name: family.space for name, family in families.items()})
    # a grid sampler says when it has visited every point; other samplers never run out
    exhausted = getattr(base_sampler, "is_exhausted", lambda study: False)
    keep = max(1, cfg.ensemble.candidates)
    study = open_study(cfg, base_sampler)
    allocator = Allocator(
        order,
        cfg.rank_penalty,
        deadline is not None,
        np.random.default_rng(0),
        frozenset(name for name, family in families.items() if not family.space),
    )
    started = time.monotonic()
    running: dict[Any, tuple[optuna.Trial, str, dict[str, Any], float]] = {}
    kept: list[Kept] = []
    mine: list[int] = []

    def stop_at() -> float:
        """When the search must end: the budget less the refit of an ensemble of the
        best trial of each family so far (an ensemble usually mixes families)."""
        if deadline is None:
            return float("inf")
        leaders = {k.family: k.outcome for k in reversed(kept)}
        return deadline - finish_seconds - refit_estimate(list(leaders.values()), pool.workers)

    def next_trial() -> bool:
        with warnings.catch_warnings():  # marked experimental; what optimize() calls
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # trials of a process that stopped beating
        trials = study.get_trials(deepcopy=False)  # one read of the (maybe shared) storage
        family = allocator.choose(trials, stop_at() - time.monotonic())
        if family is None:
            return False
        spec = families[family]
        tried = sum(t.params.get("family") == family and not died(t) for t in trials)
        fixed = {"family": family, **spec.start(tried, cfg.start_with_defaults)}
        with warnings.catch_warnings():  # PartialFixedSampler is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = optuna.samplers.PartialFixedSampler(fixed, base_sampler)
        with warnings.catch_warnings():  # our Heartbeat beats for the trials we ask
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
            trial = study.ask()
        heartbeat.started(trial)
        trial.suggest_categorical("family", order)
        values = suggest(trial, spec.space, "")
        trial.set_user_attr("worker", worker_name())
        running[pool.submit(spec.build(values))] = (trial, family, values, time.monotonic())
        mine.append(trial.number)
        return True

    progress = progress or SearchProgress(enabled=False, n_trials=cfg.n_trials, deadline=deadline)
    heartbeat = Heartbeat(study, lambda: [trial for trial, *_ in list(running.values())])
    try:
        while True:
            while len(running) < pool.workers and may_start(cfg, mine, stop_at()):
                if exhausted(study):
                    break
                if not next_trial():
                    break
            if not running:
                break
            if deadline is None:  # trials are told in the order they were asked: reproducible
                done = [next(iter(running))]
                wait(done)
            else:
                left = max(0.0, stop_at() - time.monotonic())
                done, _ = wait(list(running), timeout=left, return_when=FIRST_COMPLETED)
                if not done:  # the budget is spent: trials still running are stopped
                    break
            for future in done:
                trial, family, values, submitted = running.pop(future)
                score, spent = record(
                    study, trial, family, values, submitted, future, kept, keep, shared
                )
                progress.trial(trial.number, family, values, score, spent)
    finally:
        heartbeat.stop()
        progress.close()
    for trial, family, _, submitted in running.values():
        trial.set_user_attr("stopped", "time budget")
        trial.set_user_attr("seconds", time.monotonic() - submitted)
        study.tell(trial, state=TrialState.FAIL)
        log.info("trial %d (%s) stopped: the time budget is spent", trial.number, family)
    stopped = len(running)
    pool.close(kill=bool(running))
    seconds = time.monotonic() - started
    if not kept:
        raise AutomlError(no_result(study, mine, stopped))
    if shared is not None:
        others = shared.others(study, set(mine), keep)
        kept = sorted(kept + others, key=lambda k: k.outcome.score, reverse=True)[:keep]
        log.info("shared study: %d other trial(s) among the ensemble candidates", len(others))
    trials = trial_table(study, mine)
    log.info("search: %d trials in %.1fs, %d stopped at the budget", len(mine), seconds, stopped)
    return PortfolioResult(trials, family_table(trials, order), kept, seconds)


def may_start(cfg: Any, mine: list[int], stop_at: float) -> bool:
    """Whether another trial may start: the trial cap and the time left allow it."""
    if cfg.n_trials is not None and len(mine) >= cfg.n_trials:
        return False
    return time.monotonic() < stop_at


# what to do about the most common trial error, by a phrase in it (checked in order)
ADVICE = (
    ("MemoryError", "lower search.n_jobs or n_jobs, or train on fewer rows"),
    ("could not convert", "a column's values do not match its type: check dataset.contract"),
    ("classes", "check the target's classes (dataset.task, dataset.positive_class)"),
)
FALLBACK_ADVICE = (
    "every trial's error is in train.log and leaderboard.csv; leave the failing families "
    "out of model.families, or fix the data they fail on"
)


def no_result(study: optuna.Study, numbers: list[int], stopped: int = 0) -> str:
    """Why no trial of ``numbers`` has a score: the most common error (with what to do
    about it) when trials failed; the time budget only when it stopped them."""
    ours = set(numbers)
    failed = [
        (t.params.get("family"), t.user_attrs["error"])
        for t in study.get_trials(deepcopy=False)
        if t.number in ours and "error" in t.user_attrs
    ]
    if failed:
        counts = Counter(error for _, error in failed)
        common, times = counts.most_common(1)[0]
        families = sorted({str(f) for f, error in failed if error == common})
        advice = next((a for phrase, a in ADVICE if phrase in common), FALLBACK_ADVICE)
        budget = f"; {stopped} more stopped at the time budget" if stopped else ""
        return (
            f"{len(failed)} search trial(s) failed and none finished{budget}. The most "
            f"common error ({times} trial(s) of {', '.join(families)}): {common}. "
            f"Fix: {advice}"
        )
    if stopped:
        return (
            f"no search trial finished within the time budget ({stopped} stopped); raise "
            "search.time_budget or choose cheaper families in model.families"
        )
    return (
        "no search trial started: the time budget left none (raise search.time_budget), "
        "or search.n_trials is 0"
    )


def record(
    study: optuna.Study,
    trial: optuna.Trial,
    family: str,
    values: dict[str, Any],
    submitted: float,
    future: Any,
    kept: list[Kept],
    keep: int,
    shared: SharedPredictions | None = None,
) -> tuple[float | None, float]:
    """Tell the study how a trial went; keep its predictions if it is among the best (and
    share them, with ``shared``). Returns its score (None: it failed) and seconds.

    A failed trial (a library error for some parameters) is recorded, not raised: the
    other families go on.
    """
    try:
        outcome: TrialOutcome = future.result()
    except Exception as error:  # noqa: BLE001 - any library's error fails only this trial
        seconds = time.monotonic() - submitted
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d (%s) failed: %s", trial.number, family, error)
        return None, seconds
    trial.set_user_attr("seconds", outcome.seconds)
    if not np.isfinite(outcome.score):
        trial.set_user_attr("error", "the CV score is not a number (e.g. one class in a fold)")
        study.tell(trial, state=TrialState.FAIL)
        return None, outcome.seconds
    if outcome.scores:
        trial.set_user_attr("cv_std", float(np.std(outcome.scores)))
    done = Kept(trial.number, family, values, outcome)
    if shared is not None:
        shared.upload(trial, done)
    study.tell(trial, outcome.score)
    kept.append(done)
    kept.sort(key=lambda k: k.outcome.score, reverse=True)
    del kept[keep:]
    return outcome.score, outcome.seconds


def trial_table(study: optuna.Study, numbers: list[int]) -> pd.DataFrame:
    """This process's trials, best first: family, score, seconds, state, parameters."""
    ours = set(numbers)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.number not in ours:
            continue
        rows.append(
            {
                "number": t.number,
                "family": t.params.get("family"),
                "value": t.value,
                "seconds": t.user_attrs.get("seconds"),
                "state": t.user_attrs.get("stopped", t.state.name),
                "worker": t.user_attrs.get("worker"),
                **{f"params_{k}": v for k, v in t.params.items() if k != "family"},
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values("value", ascending=False, na_position="last", ignore_index=True)


def family_table(trials: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Per family: best CV score, trials finished, trials failed or stopped, seconds."""
    rows = []
    for name in order:
        mine = trials[trials["family"] == name]
        finished = mine[mine["state"] == "COMPLETE"]
        rows.append(
            {
                "family": name,
                "best_cv": finished["value"].max() if len(finished) else np.nan,
                "trials": len(finished),
                "failed_or_stopped": len(mine) - len(finished),
                "seconds": round(float(mine["seconds"].fillna(0).sum()), 2),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values("best_cv", ascending=False, na_position="last", ignore_index=True)
