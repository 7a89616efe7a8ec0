"""Explanations of a bundle's model: per-row contributions of each input column, and the
model's global importance.

Contributions are on the model's output scale: every class's probability for a
classifier, the predicted value for a regressor; per row and output,
``base + sum(contributions) == output``. The base is the mean output over a background
sample of training rows (the bundle keeps one). How each part is explained:

- a pipeline whose feature steps keep input columns apart (the blocks of the
  ColumnTransformer, then selection): its model on the transformed features, each
  transformed column's contribution summed back to the input column it came from
  (one-hot, date parts, text SVD, hashing of one column...):
  - tree models (LightGBM, XGBoost, scikit-learn forests and histogram boosting) with
    ``shap.TreeExplainer``: path-dependent where the trees' raw output is the output
    (regression, forest probabilities), interventional with ``model_output="probability"``
    for binary boosters;
  - a linear regressor with ``shap.LinearExplainer`` (exact);
  - anything else (logistic regression, softmax boosters, native categoricals, a tree
    explainer that does not add up) with the model-agnostic Shapley explainer below, on
    the model alone with the transformed columns masked by input column;
- an ensemble (duck-typed: ``members_`` and ``weights``): the weighted mean of its
  members' contributions, each member explained through its own feature steps;
- anything else (steps that mix columns: interactions, decomposition, hashing of several
  columns; wrappers that change the output, e.g. calibration): the model-agnostic
  explainer on the whole model, masking input columns (said in ``Explanation.notes``).

The model-agnostic explainer computes interventional Shapley values over the background
rows: exactly (every coalition) for few columns, else by antithetic permutation sampling
(seeded); both add up by construction. Tree and linear explainers compute in float32
inside shap: a residual within ``Settings.residual`` of the output is spread over the
row's contributions in proportion to their size; a larger one means the explainer does
not reproduce the model, and the model-agnostic explainer is used instead.

This module is part of the bundle layer: it imports no model, search or serving code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, fields, replace
from functools import cached_property, partial
from math import comb
from typing import Any

import numpy as np
import pandas as pd

from automl.errors import AutomlError, ConfigError
from automl.scorers import scorer

log = logging.getLogger(__name__)
VALUE = "prediction"  # the one output of a regressor
PROBE_ROWS = 100  # background rows used to check that a block keeps its columns apart
# Path-dependent Tree SHAP visits every node of every tree for each row, at about 7x the
# cost of a node visited by a prediction (forests on adult): past PATH_COST x (predictions
# per row of the model-agnostic explainer) nodes per tree, the latter is faster.
PATH_COST = 0.15


@dataclass(frozen=True)
class Settings:
    """How rows are explained: the ``explainer`` config group (conf/common/explainer/)."""

    permutations: int = 4  # antithetic pairs of permutations per row (model-agnostic)
    exact_coalitions: int = 256  # exact Shapley values when 2^columns is at most this
    background_rows: int = 50  # background rows the model-agnostic explainer averages over
    tolerance: float = 1e-6  # |base + sum - output| allowed, relative to max(1, |output|)
    residual: float = 1e-4  # the largest tree/linear residual spread (else model-agnostic)
    batch_rows: int = 50_000  # rows one model call scores (bounds memory)
    threads: int | None = 1  # threads the model predicts with while explaining (None: its own)
    seed: int = 0

    @classmethod
    def of(cls, node: Any = None) -> Settings:
        """Settings from a config node (a mapping; None: the defaults)."""
        values = dict(node or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"explainer: unknown setting(s) {unknown}; known: {known}")
        return cls(**values)


@dataclass
class Explanation:
    """Per-row contributions of each input column to the model's output.

    ``values[i, k, j]`` is input column ``columns[j]``'s contribution to output
    ``outputs[k]`` (a class, or ``"prediction"``) of row ``i``; per row and output,
    ``base[k] + values[i, k].sum() == output[i, k]`` within ``Settings.tolerance``.
    ``method`` says how the values were computed, ``notes`` what fell back and why.
    """

    values: np.ndarray  # (rows, outputs, columns)
    base: np.ndarray  # (outputs,)
    output: np.ndarray  # (rows, outputs): the model's output the values add up to
    columns: list[str]
    outputs: list[str]
    method: str
    notes: list[str] = field(default_factory=list)
    index: pd.Index | None = None

    @property
    def error(self) -> float:
        """The largest |base + sum of contributions - output| over rows and outputs."""
        if not self.values.size:
            return 0.0
        return float(np.abs(self.base + self.values.sum(axis=2) - self.output).max())

    def explained(self) -> list[int]:
        """The outputs a table reports: the positive class of a binary classifier (its
        probability is the other's complement), else every output."""
        return [1] if len(self.outputs) == 2 else list(range(len(self.outputs)))

    def frame(self) -> pd.DataFrame:
        """One row per explained row (the naming of :meth:`automl.Model.explain`)."""
        data = {}
        for k in self.explained():
            for j, name in enumerate(table_names(self.columns, self.outputs, k)):
                data[name] = self.values[:, k, j] if j < len(self.columns) else self.base[k]
        return pd.DataFrame(data, index=self.index, columns=frame_columns(self))

    def records(self) -> list[dict[str, Any]]:
        """Per row, JSON-ready: ``{"base_value", "values": {column: value}}`` for a
        regressor or a binary classifier (its positive class), per class for multiclass."""
        chosen = self.explained()
        rows = []
        for i in range(len(self.values)):
            per = {
                self.outputs[k]: {
                    "base_value": float(self.base[k]),
                    "values": dict(zip(self.columns, self.values[i, k].tolist(), strict=True)),
                }
                for k in chosen
            }
            rows.append(per if len(chosen) > 1 else next(iter(per.values())))
        return rows

    def describe(self) -> str:
        """What the values add up to, in words."""
        if self.outputs == [VALUE]:
            return "the predicted value"
        if len(self.outputs) == 2:
            return f"the probability of class '{self.outputs[1]}'"
        return "the probability of each class"


def table_names(columns: Sequence[str], outputs: Sequence[str], k: int) -> list[str]:
    """The table's column names for output ``k``: the contributions, then the base value.
    One output reported (regression, binary): ``contrib_<column>``, ``base_value``;
    several: ``contrib_<class>__<column>``, ``base_value_<class>``."""
    if len(outputs) <= 2:
        return [*(f"contrib_{c}" for c in columns), "base_value"]
    return [*(f"contrib_{outputs[k]}__{c}" for c in columns), f"base_value_{outputs[k]}"]


def frame_columns(explanation: Explanation) -> list[str]:
    """Every column of :meth:`Explanation.frame`, in order."""
    e = explanation
    return [n for k in e.explained() for n in table_names(e.columns, e.outputs, k)]


def empty_explanation(columns: Sequence[str], classes: Sequence[str] | None) -> Explanation:
    """An explanation of no rows (its ``frame()`` has every column, no row)."""
    outputs = [str(c) for c in classes] if classes is not None else [VALUE]
    k, m = len(outputs), len(columns)
    return Explanation(
        np.zeros((0, k, m)), np.zeros(k), np.zeros((0, k)), list(columns), outputs, "none"
    )


def background_sample(X_train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` training rows drawn at random (all when there are fewer): the background
    the explanations average over, kept in the bundle."""
    if rows < 1:
        raise ConfigError(f"the background sample needs at least 1 row, got {rows}")
    return X_train.sample(n=min(rows, len(X_train)), random_state=seed).reset_index(drop=True)


def contributions(
    pipeline: Any,
    features: pd.DataFrame,
    classes: Sequence[str] | None,
    background: pd.DataFrame | None,
    settings: Settings | None = None,
) -> Explanation:
    """Contributions of each input column to ``pipeline``'s output for each row of
    ``features`` (cleaned and checked as for prediction); ``classes`` None: regression.
    Builds an :class:`Explainer` each call: keep one to explain many times."""
    return Explainer(pipeline, classes, background, settings).explain(features)


# --------------------------------------------------------------------------- outputs


def outputs(model: Any, X: Any, classifier: bool) -> np.ndarray:
    """The model's output as a float matrix: class probabilities, or one value column."""
    if classifier:
        return np.asarray(model.predict_proba(X), dtype=np.float64)
    return np.asarray(model.predict(X), dtype=np.float64).reshape(len(X), -1)


def transparent_inner(model: Any, sample: Any, classifier: bool) -> Any | None:
    """The fitted estimator inside a wrapper (``estimator_``) when the wrapper gives its
    outputs unchanged on ``sample`` (e.g. early stopping; not a calibration), else None."""
    inner = getattr(model, "estimator_", None)
    if inner is None or inner is model:
        return None
    try:
        given, inside = (outputs(m, sample, classifier) for m in (model, inner))
        same = np.array_equal(given, inside)
    except Exception:  # e.g. a forest's unfitted template estimator
        return None
    return inner if same else None


def settle(
    values: np.ndarray, base: np.ndarray, output: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray]:
    """(``values`` with each row's residual (output - base - sum) spread over its
    contributions in proportion to their size, which rows' residuals are within
    ``limit`` relative to max(1, |output|)): the other rows' values do not explain
    their output."""
    residual = output - base - values.sum(axis=2)
    scale = limit * np.maximum(1.0, np.abs(output))
    within = np.all(np.isfinite(residual) & (np.abs(residual) <= scale), axis=1)
    size = np.abs(values)
    total = size.sum(axis=2, keepdims=True)
    even = np.full_like(values, 1.0 / max(values.shape[2], 1))
    share = np.where(total > 0, size / np.where(total > 0, total, 1.0), even)
    return values + np.nan_to_num(residual)[:, :, None] * share, within


def sum_groups(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """(rows, outputs, transformed columns) summed to (rows, outputs, groups)."""
    return np.stack([values[:, :, g].sum(axis=2) for g in groups], axis=2)


# --------------------------------------------------------------------------- mapping


def block_columns(columns: Any, names_in: np.ndarray) -> list[str]:
    """A ColumnTransformer block's input columns as names (given as names, positions or
    a mask)."""
    if isinstance(columns, str | int):
        columns = [columns]
    columns = list(columns) if not isinstance(columns, slice) else list(names_in[columns])
    if columns and isinstance(columns[0], bool | np.bool_):
        return [str(c) for c in names_in[np.asarray(columns, dtype=bool)]]
    return [str(names_in[c]) if isinstance(c, int | np.integer) else str(c) for c in columns]


def name_owner(name: str, columns: list[str]) -> int | None:
    """The position of the column an output name comes from: the name itself, or the
    column followed (``age_2``, ``note=word``, ``note_svd0``) or preceded
    (``missingindicator_age``) by a separator; the longest such column. None: none."""
    found = [
        i
        for i, c in enumerate(columns)
        if name == c or any(name.startswith(c + s) or name.endswith(s + c) for s in ("_", "="))
    ]
    return max(found, key=lambda i: len(columns[i])) if found else None


def changed(before: Any, after: Any) -> np.ndarray:
    """Which output columns differ between two transforms of the same rows."""
    a, b = (pd.DataFrame(t.toarray() if hasattr(t, "toarray") else t) for t in (before, after))
    return np.array([not a.iloc[:, j].equals(b.iloc[:, j]) for j in range(a.shape[1])])


def block_owners(
    name: str, transformer: Any, columns: list[str], sample: pd.DataFrame, width: int
) -> np.ndarray | str:
    """For each output column of one block, the position (in ``columns``) of its input
    column; or why the outputs cannot be told apart by input column."""
    if len(columns) == 1:
        return np.zeros(width, dtype=int)
    if transformer == "passthrough":
        return np.arange(len(columns))
    try:
        names = [str(n) for n in transformer.get_feature_names_out(columns)]
    except Exception as exc:
        return f"block '{name}' does not name its outputs ({exc})"
    owners = [name_owner(n, columns) for n in names]
    if len(names) != width or None in owners:
        return f"block '{name}' mixes its columns {columns} (e.g. hashing them together)"
    owners = np.asarray(owners)
    frame = sample[columns]
    before = transformer.transform(frame)
    shift = np.roll(np.arange(len(frame)), 1)
    for i, column in enumerate(columns):  # each column moved alone moves only its outputs
        moved = frame.copy()
        moved[column] = frame[column].iloc[shift].set_axis(frame.index)
        if np.any(changed(before, transformer.transform(moved)) & (owners != i)):
            return f"block '{name}' mixes its columns: '{column}' changes other columns' outputs"
    return owners


def column_groups(
    steps: Sequence[Any], columns: list[str], sample: pd.DataFrame
) -> list[np.ndarray] | str:
    """For each input column, the positions of the transformed columns that come from it
    (through the ColumnTransformer's blocks, then selection steps); or why that mapping
    does not exist (a step that mixes columns)."""
    if not steps or not hasattr(steps[0], "transformers_"):
        return "the first feature step is not a fitted ColumnTransformer"
    blocks = steps[0]
    names_in = np.asarray(getattr(blocks, "feature_names_in_", columns), dtype=object)
    owner = np.full(sum(s.stop - s.start for s in blocks.output_indices_.values()), -1)
    for name, transformer, used in blocks.transformers_:
        where = blocks.output_indices_.get(name, slice(0, 0))
        if where.stop == where.start or transformer == "drop":
            continue
        inputs = block_columns(used, names_in)
        missing = [c for c in inputs if c not in columns]
        if missing:
            return f"block '{name}' reads columns {missing} that the input lacks"
        local = block_owners(name, transformer, inputs, sample, where.stop - where.start)
        if isinstance(local, str):
            return local
        owner[where] = [columns.index(inputs[i]) for i in local]
    for step in steps[1:]:
        inner = getattr(step, "step_", step)  # a step that can be switched off
        if inner is None:
            continue
        if not hasattr(inner, "get_support"):
            return f"the step {type(inner).__name__} mixes columns"
        owner = owner[inner.get_support()]
    if np.any(owner < 0):
        return "some transformed columns come from no input column"
    return [np.flatnonzero(owner == j) for j in range(len(columns))]


# --------------------------------------------------------------------------- explainers


@dataclass
class Part:
    """What a node explains: values per input column, the base, and the output."""

    values: np.ndarray  # (rows, outputs, input columns)
    base: np.ndarray  # (outputs,)
    output: np.ndarray  # (rows, outputs)
    method: str
    notes: list[str] = field(default_factory=list)


class Shapley:
    """Model-agnostic interventional Shapley values of ``predict`` for column groups.

    A coalition's value for a row is the mean output over the background rows with the
    coalition's groups taken from the row. Exact (every coalition) when there are at
    most ``log2(exact_coalitions)`` groups, else ``permutations`` antithetic pairs of
    seeded permutations. Either way the values are a fixed linear map of the coalition
    values, whose columns sum to (full - empty): per row they add up to the output minus
    the background's mean output.
    """

    def __init__(
        self,
        predict: Callable[[Any], np.ndarray],
        background: Any,
        groups: list[np.ndarray],
        settings: Settings,
    ) -> None:
        self.predict = predict
        self.groups = groups
        self.settings = settings
        rows = min(settings.background_rows, len(background))
        pick = np.sort(np.random.default_rng(settings.seed).choice(len(background), rows, False))
        self.background = take(background, pick)
        self.active = [g for g, cols in enumerate(groups) if len(cols)]
        m = len(self.active)
        if exact(m, settings):
            self.method = "exact Shapley"
            self.masks, self.weights = exact_weights(m)
        else:
            self.method = f"permutation Shapley ({settings.permutations} antithetic pairs)"
            self.masks, self.weights = permutation_weights(m, settings.permutations, settings.seed)

    def explain(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """(values (rows, outputs, groups), base (outputs,))."""
        n, b, c = len(X), len(self.background), len(self.masks)
        chunk = max(1, self.settings.batch_rows // (b * c))
        coalitions = []
        for start in range(0, n, chunk):
            rows = take(X, np.arange(start, min(n, start + chunk)))
            coalitions.append(self.coalition_values(rows))
        V = np.concatenate(coalitions)  # (rows, coalitions, outputs)
        active = np.einsum("nck,cm->nkm", V, self.weights)
        values = np.zeros((n, V.shape[2], len(self.groups)))
        values[:, :, self.active] = active
        return values, V[0, 0]  # coalition 0 is the empty one

    def coalition_values(self, rows: Any) -> np.ndarray:
        """(rows, coalitions, outputs): each coalition's mean output over the background."""
        r, b, c = len(rows), len(self.background), len(self.masks)
        table = stack(rows, self.background)
        own = np.arange(r)[:, None, None]
        other = r + np.arange(b)[None, None, :]
        sources = [np.zeros(r * c * b, dtype=np.intp) for _ in self.groups]
        for position, g in enumerate(self.active):
            on = self.masks[None, :, position, None]
            sources[g] = np.where(on, own, other).reshape(-1)
        out = self.predict(gather(table, self.groups, sources))
        return out.reshape(r, c, b, -1).mean(axis=2)


def exact(m: int, settings: Settings) -> bool:
    """Whether ``m`` groups are explained exactly (every coalition)."""
    return 2**m <= max(settings.exact_coalitions, 2)


def predictions_per_row(m: int, rows: int, settings: Settings) -> int:
    """How many predictions the model-agnostic explainer makes per explained row."""
    coalitions = 2**m if exact(m, settings) else 2 * m * settings.permutations
    return coalitions * min(settings.background_rows, rows)


def exact_weights(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Every coalition of ``m`` groups (the empty one first) and the Shapley weights that
    turn coalition values into values: phi_j = sum_S w(|S|) (v(S + j) - v(S))."""
    masks = ((np.arange(2**m)[:, None] >> np.arange(m)) & 1).astype(bool)
    w = np.array([1.0 / (m * comb(m - 1, s)) for s in range(m)] + [0.0])
    sizes = masks.sum(axis=1)
    inside = w[np.maximum(sizes - 1, 0)][:, None]
    outside = w[np.minimum(sizes, m)][:, None]
    return masks, np.where(masks, inside, -outside)


def permutation_weights(m: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The coalitions along ``pairs`` seeded permutations and their reverses (the empty
    one first) and the weights that average each group's marginal contributions."""
    if pairs < 1:
        raise ConfigError(f"explainer.permutations must be at least 1, got {pairs}")
    rng = np.random.default_rng(seed)
    index: dict[bytes, int] = {}
    masks: list[np.ndarray] = []

    def position(mask: np.ndarray) -> int:
        key = mask.tobytes()
        if key not in index:
            index[key] = len(masks)
            masks.append(mask.copy())
        return index[key]

    entries: list[tuple[int, int, float]] = []
    position(np.zeros(m, dtype=bool))
    for _ in range(pairs):
        order = rng.permutation(m)
        for sequence in (order, order[::-1]):
            mask = np.zeros(m, dtype=bool)
            before = position(mask)
            for j in sequence:
                mask[j] = True
                after = position(mask)
                entries += [(after, j, 1.0), (before, j, -1.0)]
                before = after
    weights = np.zeros((len(masks), m))
    for row, column, sign in entries:
        weights[row, column] += sign / (2 * pairs)
    return np.array(masks), weights


def take(table: Any, rows: np.ndarray) -> Any:
    """Rows of a frame (index reset) or an array, by position."""
    if isinstance(table, pd.DataFrame):
        return table.iloc[rows].reset_index(drop=True)
    return table[rows]


def stack(first: Any, second: Any) -> Any:
    """Rows of ``first`` then ``second`` (frames with the same columns, or arrays)."""
    if isinstance(first, pd.DataFrame):
        return pd.concat([first, second], ignore_index=True)
    return np.vstack([first, second])


def gather(table: Any, groups: list[np.ndarray], sources: list[np.ndarray]) -> Any:
    """New rows: each group's columns from the rows ``sources[group]`` of ``table``."""
    if isinstance(table, pd.DataFrame):
        parts = {}
        for cols, rows in zip(groups, sources, strict=True):
            for j in cols:
                parts[j] = table.iloc[:, j].take(rows).reset_index(drop=True)
        return pd.concat([parts[j] for j in range(table.shape[1])], axis=1)
    out = np.empty((len(sources[0]), table.shape[1]), dtype=table.dtype)
    for cols, rows in zip(groups, sources, strict=True):
        if len(cols):
            out[:, cols] = table[np.ix_(rows, cols)]
    return out


class Agnostic:
    """The model-agnostic explainer of an estimator on its own input (groups of its
    columns: the input columns, or the transformed columns of each input column)."""

    def __init__(
        self,
        model: Any,
        background: Any,
        groups: list[np.ndarray],
        classifier: bool,
        settings: Settings,
        notes: list[str] | None = None,
    ) -> None:
        self.classifier = classifier
        self.model = model
        predict = partial(outputs, model, classifier=classifier)
        self.shapley = Shapley(predict, background, groups, settings)
        self.notes = notes or []

    def explain(self, X: Any) -> Part:
        values, base = self.shapley.explain(X)
        output = outputs(self.model, X, self.classifier)
        return Part(values, base, output, self.shapley.method, list(self.notes))


class Fast:
    """A model explained by shap's tree or linear explainer on its transformed columns,
    summed to input-column groups. Rows it does not explain (a residual beyond
    ``Settings.residual``) go to the model-agnostic explainer: only those rows when the
    explainer's base is the background's mean output (interventional), else every row."""

    def __init__(
        self,
        model: Any,
        background: Any,
        groups: list[np.ndarray],
        classifier: bool,
        settings: Settings,
    ) -> None:
        self.model, self.background, self.groups = model, background, groups
        self.classifier, self.settings = classifier, settings
        try:
            used = sum(1 for g in groups if len(g))
            budget = PATH_COST * predictions_per_row(used, len(background), settings)
            self.compute, self.method, self.interventional = fast_explainer(
                model, background, classifier, budget
            )
        except Exception as exc:  # shap refuses the model: explained model-agnostically
            log.debug("no tree or linear explainer for %s: %s", type(model).__name__, exc)
            self.compute, self.method, self.interventional = None, "model-agnostic", False
        if self.interventional:  # the base as the model computes it (shap: in float32)
            self.mean = outputs(model, background, classifier).mean(axis=0)

    @cached_property
    def agnostic(self) -> Agnostic:
        """For every row (the configured background sample)."""
        return Agnostic(self.model, self.background, self.groups, self.classifier, self.settings)

    @cached_property
    def rows_agnostic(self) -> Agnostic:
        """For single rows, on the whole background: its base is ``self.mean``."""
        every = replace(self.settings, background_rows=len(self.background))
        return Agnostic(self.model, self.background, self.groups, self.classifier, every)

    def explain(self, Z: Any) -> Part:
        if self.compute is None:
            return self.agnostic.explain(Z)
        output = outputs(self.model, Z, self.classifier)
        try:
            values, base = self.compute(Z)
        except Exception as exc:
            return self.instead(Z, f"{self.method} failed ({exc})")
        if self.interventional:
            base = self.mean
        limit = self.settings.residual
        values, within = settle(sum_groups(values, self.groups), base, output, limit)
        if within.all():
            return Part(values, base, output, self.method)
        why = f"{self.method} does not add up to the output"
        bad = np.flatnonzero(~within)
        if not self.interventional or 2 * len(bad) > len(Z):  # cheaper all at once
            return self.instead(Z, why)
        part = self.rows_agnostic.explain(take(Z, bad))
        fixed, within = settle(part.values, base, part.output, limit)
        if not within.all():
            return self.instead(Z, why)
        values[bad] = fixed
        note = f"{why} for {len(bad)} of {len(Z)} rows: model-agnostic there"
        return Part(values, base, output, f"{self.method}; {part.method} for some rows", [note])

    def instead(self, Z: Any, why: str) -> Part:
        """Every row by the model-agnostic explainer, saying why."""
        part = self.agnostic.explain(Z)
        part.notes.insert(0, f"{why}: model-agnostic instead")
        return part


Compute = Callable[[Any], tuple[np.ndarray, np.ndarray]]


def fast_explainer(
    model: Any, background: Any, classifier: bool, budget: float
) -> tuple[Compute | None, str, bool]:
    """shap's explainer for ``model`` (or the estimator inside a wrapper that leaves its
    output unchanged): (``Z -> (values (rows, outputs, columns), base)``, the method,
    whether its base is the background's mean output); (None, why, False) when there is
    none on the output scale."""
    if isinstance(background, pd.DataFrame) and not all(
        pd.api.types.is_numeric_dtype(t) for t in background.dtypes
    ):
        return None, "model-agnostic (non-numeric model input)", False
    import shap

    estimator = model
    while estimator is not None:
        try:
            tree = shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent")
        except Exception:
            tree = None
        if tree is not None:
            return tree_explainer(shap, tree, estimator, background, classifier, budget)
        if not classifier and np.ndim(getattr(estimator, "coef_", None)) == 1:
            linear = shap.LinearExplainer(estimator, background)
            return partial_values(linear.shap_values, linear, classifier), "linear (exact)", True
        estimator = transparent_inner(estimator, background, classifier)
    return None, "model-agnostic", False


def tree_explainer(
    shap: Any, tree: Any, estimator: Any, background: Any, classifier: bool, budget: float
) -> tuple[Compute | None, str, bool]:
    """Path-dependent Tree SHAP where the trees' raw output is the model's output (unless
    the trees have more than ``budget`` nodes each: then the model-agnostic explainer is
    faster), interventional on the probability for a binary booster (log-odds trees)."""
    kind, width = tree.model.tree_output, tree.model.num_outputs
    if kind == ("probability" if classifier else "raw_value"):
        nodes = float(np.mean((tree.model.children_left >= 0).sum(axis=1)))
        if nodes > budget:
            return None, f"model-agnostic (trees of {nodes:.0f} splits each)", False
        method = "tree (path-dependent)"
        return partial_values(tree_values(tree), tree, classifier), method, False
    if classifier and kind == "log_odds" and width == 1:
        interventional = shap.TreeExplainer(
            estimator,
            data=background,
            feature_perturbation="interventional",
            model_output="probability",
        )
        method = "tree (interventional, probability)"
        return partial_values(tree_values(interventional), interventional, classifier), method, True
    return None, "model-agnostic (trees on a softmax or other link)", False


def tree_values(tree: Any) -> Callable[[Any], Any]:
    """A tree explainer's values, its additivity left to :func:`settle`."""
    return lambda Z: tree.shap_values(Z, check_additivity=False)


def partial_values(shap_values: Callable, explainer: Any, classifier: bool) -> Callable:
    """``Z -> (values (rows, outputs, columns), base (outputs,))`` from a shap explainer;
    a binary classifier's single output (the positive class) gives both classes."""

    def compute(Z: Any) -> tuple[np.ndarray, np.ndarray]:
        values = np.asarray(shap_values(Z), dtype=np.float64)
        base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
        values = values[:, None, :] if values.ndim == 2 else values.transpose(0, 2, 1)
        if classifier and values.shape[1] == 1:
            return np.concatenate([-values, values], axis=1), np.array([1 - base[0], base[0]])
        return values, base

    return compute


class PipelineNode:
    """A pipeline whose feature steps keep input columns apart: its model explained on
    the transformed columns, summed back to input columns."""

    def __init__(
        self,
        pipeline: Any,
        groups: list[np.ndarray],
        background: pd.DataFrame,
        classifier: bool,
        settings: Settings,
    ) -> None:
        self.steps = pipeline[:-1]
        self.model = Fast(pipeline[-1], self.transform(background), groups, classifier, settings)

    def transform(self, X: pd.DataFrame) -> Any:
        Z = self.steps.transform(X)
        return Z.toarray() if hasattr(Z, "toarray") else Z

    def explain(self, X: pd.DataFrame) -> Part:
        return self.model.explain(self.transform(X))


class EnsembleNode:
    """The weighted mean of its members' explanations (as it averages their outputs)."""

    def __init__(self, members: list[Any], weights: Sequence[float]) -> None:
        self.members = members
        self.weights = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))

    def explain(self, X: pd.DataFrame) -> Part:
        parts = [member.explain(X) for member in self.members]
        blend = [p for p, w in zip(parts, self.weights, strict=True) if w != 0]
        weights = self.weights[self.weights != 0]

        def mean(attr: str) -> np.ndarray:
            return sum(w * getattr(p, attr) for p, w in zip(blend, weights, strict=True))

        method = "ensemble: " + " + ".join(
            f"{w:.2f} x {p.method}" for p, w in zip(blend, weights, strict=True)
        )
        notes = [n for p in blend for n in p.notes]
        return Part(mean("values"), mean("base"), mean("output"), method, notes)


def plan(
    model: Any,
    background: pd.DataFrame,
    classifier: bool,
    settings: Settings,
    columns: list[str],
) -> Any:
    """The node that explains ``model`` on the input columns."""
    members, weights = getattr(model, "members_", None), getattr(model, "weights", None)
    if members is not None and weights is not None and len(members) == len(weights):
        nodes = [plan(m, background, classifier, settings, columns) for m in members]
        return EnsembleNode(nodes, weights)
    notes = []
    if hasattr(model, "steps") and len(model.steps) > 1:
        sample = background.iloc[:PROBE_ROWS]
        groups = column_groups(list(model[:-1]), columns, sample)
        if not isinstance(groups, str):
            return PipelineNode(model, groups, background, classifier, settings)
        notes.append(f"{groups}: explained on the input columns (model-agnostic)")
    inner = transparent_inner(model, background, classifier)
    if inner is not None:
        return plan(inner, background, classifier, settings, columns)
    if not notes:
        notes.append(f"{type(model).__name__}: explained on the input columns (model-agnostic)")
    identity = [np.array([j]) for j in range(len(columns))]
    return Agnostic(model, background, identity, classifier, settings, notes)


class ThreadLimit:
    """Process-wide thread limits (threadpoolctl) held while any explanation runs:
    threadpoolctl's limits are global, so overlapping explanations share one limit (the
    first one's), restored when the last one ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.limiter: Any = None

    @contextmanager
    def limit(self, threads: int) -> Iterator[None]:
        with self.lock:
            if self.active == 0:
                from threadpoolctl import threadpool_limits

                self.limiter = threadpool_limits(limits=threads)
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.limiter.restore_original_limits()


THREADS = ThreadLimit()


class Explainer:
    """Explains a fitted model's predictions per input column; built once per model and
    background (it parses tree models and checks the feature steps), then reused.
    Thread-safe (one explanation at a time)."""

    def __init__(
        self,
        model: Any,
        classes: Sequence[str] | None,
        background: pd.DataFrame | None,
        settings: Settings | None = None,
    ) -> None:
        if background is None or not len(background):
            raise AutomlError(
                "no background sample to explain against: the bundle predates explanations "
                "(retrain it) or the background is empty"
            )
        self.model = model
        self.classes = None if classes is None else [str(c) for c in classes]
        self.settings = settings or Settings()
        self.columns = [str(c) for c in background.columns]
        self.background = background.reset_index(drop=True)
        self.lock = threading.Lock()
        try:
            with self.threads():
                self.root = plan(
                    model, self.background, self.classifier, self.settings, self.columns
                )
        except AutomlError:
            raise
        except Exception as exc:
            raise AutomlError(f"cannot explain this model: {exc}") from exc

    @property
    def classifier(self) -> bool:
        return self.classes is not None

    def threads(self) -> AbstractContextManager:
        """Thread limits for the model's many calls (OpenMP/BLAS; under contention one
        thread is many times faster than several)."""
        if self.settings.threads is None:
            return nullcontext()
        return THREADS.limit(self.settings.threads)

    @cached_property
    def fallback(self) -> Agnostic:
        """The model-agnostic explainer of the whole model (when a plan does not add up)."""
        identity = [np.array([j]) for j in range(len(self.columns))]
        return Agnostic(self.model, self.background, identity, self.classifier, self.settings)

    def explain(self, features: pd.DataFrame) -> Explanation:
        """Contributions for each row of ``features`` (rows as prediction takes them)."""
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise AutomlError(f"cannot explain rows without the column(s) {missing}")
        if not len(features):
            empty = empty_explanation(self.columns, self.classes)
            empty.index = features.index
            return empty
        X = features[self.columns].reset_index(drop=True)
        names = self.classes if self.classifier else [VALUE]
        try:
            with self.lock, self.threads():
                output = outputs(self.model, X, self.classifier)
                if output.shape[1] != len(names):
                    raise AutomlError(f"the model gives {output.shape[1]} outputs, not {names}")
                part = self.root.explain(X)
                if not self.adds_up(part, output):
                    why = f"{part.method} does not add up to the model's output"
                    part = self.fallback.explain(X)
                    part.notes.insert(0, f"{why}: explained on the input columns")
        except AutomlError:
            raise
        except Exception as exc:  # an input the model or explainer cannot take: the input's
            log.debug("explanation failed", exc_info=True)
            raise AutomlError(f"the model cannot explain this input: {exc}") from exc
        if not self.adds_up(part, output):
            raise AutomlError("the contributions do not add up to the model's output")
        for note in part.notes:
            log.debug("explain: %s", note)
        return Explanation(
            part.values,
            part.base,
            output,
            self.columns,
            names,
            part.method,
            part.notes,
            features.index,
        )

    def adds_up(self, part: Part, output: np.ndarray) -> bool:
        """Whether base + contributions equal ``output`` within the tolerance."""
        if part.values.shape[:2] != output.shape:
            return False
        residual = np.abs(part.base + part.values.sum(axis=2) - output)
        return bool(np.all(residual <= self.settings.tolerance * np.maximum(1.0, np.abs(output))))


# --------------------------------------------------------------------------- importance


def global_importance(
    pipeline: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    scoring: str,
    seed: int,
    n_repeats: int = 5,
) -> pd.DataFrame:
    """Each input column's importance: ``permutation_mean``/``permutation_std`` (drop of
    ``scoring`` when the column is shuffled, scikit-learn's ``permutation_importance`` on
    the held-out ``X``, ``y`` through the whole model) and ``model`` (the model's own
    importance, ``feature_importances_`` or |coef|, summed back to input columns, as a
    share of the total; an ensemble's: the weighted mean over the members that have one;
    NaN when there is none). Sorted by ``permutation_mean``, largest first."""
    from sklearn.inspection import permutation_importance

    classes = getattr(pipeline, "classes_", None)
    n_classes = None if classes is None else len(classes)
    result = permutation_importance(
        pipeline, X, y, scoring=scorer(scoring, n_classes), n_repeats=n_repeats, random_state=seed
    )
    columns = [str(c) for c in X.columns]
    own = model_importance(pipeline, columns, X.iloc[:PROBE_ROWS])
    table = pd.DataFrame(
        {
            "feature": columns,
            "permutation_mean": result.importances_mean,
            "permutation_std": result.importances_std,
            "model": np.full(len(columns), np.nan) if own is None else own,
        }
    )
    table = table.sort_values("permutation_mean", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def own_importance(estimator: Any) -> np.ndarray | None:
    """``feature_importances_`` or mean |coef| of an estimator or the one it wraps."""
    while estimator is not None:
        values = getattr(estimator, "feature_importances_", None)
        if values is None and getattr(estimator, "coef_", None) is not None:
            values = np.abs(np.atleast_2d(estimator.coef_)).mean(axis=0)
        if values is not None:
            return np.asarray(values, dtype=np.float64)
        estimator = getattr(estimator, "estimator_", None)
    return None


def model_importance(model: Any, columns: list[str], sample: pd.DataFrame) -> np.ndarray | None:
    """The model's own importance per input column, as shares summing to 1 (None when
    the model has none or its features cannot be traced to input columns)."""
    members, weights = getattr(model, "members_", None), getattr(model, "weights", None)
    if members is not None and weights is not None:
        found = [
            (w, s)
            for m, w in zip(members, weights, strict=True)
            if (s := model_importance(m, columns, sample)) is not None and w
        ]
        if not found:
            return None
        return sum(w * s for w, s in found) / float(sum(w for w, _ in found))
    if hasattr(model, "steps") and len(model.steps) > 1:
        values = own_importance(model[-1])
        groups = column_groups(list(model[:-1]), columns, sample)
        if values is None or isinstance(groups, str) or len(values) != sum(map(len, groups)):
            return None
        per_column = np.array([values[g].sum() for g in groups])
    elif getattr(model, "estimator_", None) is not None:  # a wrapper, e.g. a calibration
        return model_importance(model.estimator_, columns, sample)
    else:
        return None
    total = per_column.sum()
    return per_column / total if total > 0 else per_column


def importance_png(table: pd.DataFrame, metric: str = "score", top: int = 20) -> bytes:
    """A horizontal bar chart (PNG) of the ``top`` columns of :func:`global_importance`'s
    table: mean drop of ``metric`` when the column is shuffled, with its std."""
    from automl.reports import figure, margins, plot_label, render

    rows = table.sort_values("permutation_mean", ascending=False).head(top).iloc[::-1]
    fig = figure(7.0, 0.3 * len(rows) + 1.5)
    margins(fig, left=2.4, bottom=0.7)
    ax = fig.add_subplot()
    positions = np.arange(len(rows))
    ax.barh(positions, rows["permutation_mean"], xerr=rows["permutation_std"], ecolor="grey")
    ax.set_yticks(positions, [plot_label(f, 32) for f in rows["feature"]])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"drop in {metric} when the column is shuffled")
    ax.set_title("Permutation importance on test data")
    return render(fig)
