"""The model bundle: a fitted pipeline plus the manifest that makes it self-describing.

A bundle directory holds ``pipeline.joblib`` and ``manifest.json`` (data set, task,
classes, input contract, cleaning, feature names, metrics, composed config, data
fingerprint, library versions and the SHA-256 of each file). It is written to a temp
directory and renamed into place, so a crash never leaves a bundle that loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from automl.atomic import staged
from automl.bundle.compiled import (
    CompiledModel,
    Compilers,
    Fallback,
    NotCompilable,
    compile_estimator,
)
from automl.bundle.explain import Explainer, Settings, empty_explanation, frame_columns
from automl.data.contract import Contract
from automl.data.dataset import clean
from automl.errors import AutomlError

log = logging.getLogger(__name__)
PIPELINE = "pipeline.joblib"
MANIFEST = "manifest.json"
SCORE_ROWS = 100_000  # rows cleaned, checked and scored at once: bounds memory on big frames
CHECKSUM = "manifest.sha256"
PROFILE = "profile.json"
BACKGROUND = "background.parquet"  # training rows the explanations average over
LIBRARIES = ("automl", "scikit-learn", "lightgbm", "xgboost-cpu", "pandas", "numpy", "optuna")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a pipeline depends on."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of a frame's contents (row order and column names included)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """A trained pipeline that validates its input and predicts labels or values."""

    def __init__(
        self,
        pipeline: Any,
        manifest: dict[str, Any],
        profile: dict[str, Any] | None = None,
        background: pd.DataFrame | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.manifest = manifest
        self.profile = profile
        self.background = background  # a sample of training rows (explain.background_sample)
        self.files = dict(files or {})  # the bundle's other files (model card, importance)
        self.explainers: dict[Settings, Explainer] = {}
        self.explainers_lock = threading.Lock()
        self.contract = Contract.from_config(manifest["contract"], name=manifest["dataset"])
        self.input_contract = self.contract.without(manifest["target"])
        self._compiled: CompiledModel | None = None
        self.compile_status = ""  # "compiled", or why the pipeline scores (set by compile)

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def classes(self) -> list[str] | None:
        return self.manifest["classes"]

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Clean ``frame`` as in training and check it against the input contract."""
        return self.input_contract.validate(clean(frame, self.manifest["clean"]))

    def compile(self, cfg: Any = None) -> str:
        """Compile the model for scoring (``automl.bundle.compiled``) with the ``compiled``
        config node (None or empty: the shipped ``conf/common/compiled/default.yaml``); returns
        "compiled", or why its pipeline scores instead (also kept in ``compile_status``)."""
        self._compiled = None
        if cfg and not cfg.get("enabled", True):
            self.compile_status = "disabled (compiled.enabled=false)"
            return self.compile_status
        compilers = Compilers.of(cfg) if cfg else Compilers.default()
        try:
            self._compiled = compile_estimator(self.pipeline, self.classes is not None, compilers)
            self.compile_status = "compiled"
        except NotCompilable as exc:
            self.compile_status = f"vectorised pipeline only: {exc}"
        return self.compile_status

    @property
    def compiled(self) -> CompiledModel | None:
        """The compiled model (compiled with the shipped config on first use), or None."""
        if not self.compile_status:
            self.compile()
        return self._compiled

    def output(self, features: pd.DataFrame) -> np.ndarray:
        """Class probabilities, or values, for rows ``prepare`` returned: from the compiled
        model (the pipeline's numbers, bit for bit), or the pipeline when there is none or
        these rows need it (e.g. a category an encoder refuses: it names it)."""
        if self.compiled is not None:
            try:
                return self.compiled.frame(features)
            except Fallback:
                pass
        if self.classes is None:
            return self.pipeline.predict(features)
        return self.pipeline.predict_proba(features)

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, one column per class (classification only)."""
        if self.classes is None:
            raise AutomlError("predict_proba needs a classification model")
        return in_chunks(
            frame,
            lambda part: pd.DataFrame(
                self.output(self.prepare(part)), columns=self.classes, index=part.index
            ),
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted class labels, or values for regression."""
        return self.score(frame)["prediction"].to_numpy()

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``prediction`` and, for classifiers, ``proba_<class>`` columns for each row."""
        return in_chunks(frame, lambda part: self.score_valid(self.prepare(part)))

    def score_valid(self, features: pd.DataFrame) -> pd.DataFrame:
        """``score`` for rows already cleaned and checked: what ``prepare`` returns.

        Batch scoring checks each chunk itself, to set bad rows aside, and scores the rows
        that pass with this, so they are not checked twice.
        """
        if self.classes is None:
            values = self.output(features)
            return pd.DataFrame({"prediction": values}, index=features.index)
        proba = self.output(features)
        columns = [f"proba_{c}" for c in self.classes]
        out = pd.DataFrame(proba, columns=columns, index=features.index)
        out.insert(0, "prediction", self.labels(proba))
        return out

    @property
    def explainable(self) -> bool:
        """Whether the bundle keeps the background sample explanations need."""
        return self.background is not None and len(self.background) > 0

    def explainer(self, settings: Settings | None = None) -> Explainer:
        """The model's explainer (built on first use, then kept per ``settings``)."""
        settings = settings or Settings()
        with self.explainers_lock:
            if settings not in self.explainers:
                if not self.explainable:
                    raise AutomlError(
                        f"model '{self.manifest.get('dataset')}' has no background sample to "
                        "explain against (its bundle predates explanations): retrain it"
                    )
                background = self.prepare(self.background)
                self.explainers[settings] = Explainer(
                    self.pipeline, self.classes, background, settings
                )
            return self.explainers[settings]

    def explain(self, frame: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
        """Each input column's contribution to each row's output, on the output's scale
        (the predicted value, or class probabilities): one row per row of ``frame``
        (cleaned and checked as for ``score``).

        Regression and binary classification (the positive class, ``classes[1]``):
        ``contrib_<column>`` for every input column, then ``base_value``. Multiclass:
        ``contrib_<class>__<column>`` for every class and column, then
        ``base_value_<class>``. Per row, the base value plus the contributions is the
        prediction (or the class's probability, ``proba_<class>`` of ``score``); the base
        value is the mean output over the bundle's background sample of training rows.
        How the contributions were computed: ``self.explainer().explain(...)``
        (:class:`automl.bundle.explain.Explanation`: ``method``, ``notes``).
        """
        return self.explain_valid(self.prepare(frame), settings)

    def explain_valid(
        self, features: pd.DataFrame, settings: Settings | None = None
    ) -> pd.DataFrame:
        """``explain`` for rows already cleaned and checked (what ``prepare`` returns)."""
        return self.explainer(settings).explain(features).frame()

    def explanation_columns(self) -> list[str]:
        """The columns ``explain`` returns (the background's columns are the inputs)."""
        columns = [] if self.background is None else list(self.background.columns)
        return frame_columns(empty_explanation(columns, self.classes))

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """Class labels from probabilities: the likelier class, or for a binary model with
        a tuned ``decision_threshold`` the positive class when its probability reaches it."""
        threshold = self.manifest.get("decision_threshold")
        if threshold is None:
            chosen = proba.argmax(axis=1)
        else:
            chosen = (proba[:, 1] >= threshold).astype(int)
        return np.asarray(self.classes, dtype=object)[chosen]

    def save(self, path: Path, extra_files: Mapping[str, bytes | str] | None = None) -> Path:
        """Write the bundle to ``path`` atomically (temp directory, then rename).

        ``extra_files`` ({file name: content}, e.g. the model card) are written beside the
        pipeline, with the files the bundle was loaded with, and hashed in the manifest
        like it. ``manifest.sha256`` holds the manifest's own hash; the manifest holds the
        others.
        """
        path = Path(path)
        with staged(path, directory=True) as staging:
            joblib.dump(self.pipeline, staging / PIPELINE)
            files = [PIPELINE]
            if self.profile is not None:
                (staging / PROFILE).write_text(json.dumps(self.profile, default=str))
                files.append(PROFILE)
            if self.background is not None:
                self.background.to_parquet(staging / BACKGROUND, index=False)
                files.append(BACKGROUND)
            for name, content in {**self.files, **(extra_files or {})}.items():
                taken = name in (*files, PIPELINE, PROFILE, MANIFEST, CHECKSUM)
                if taken or name in ("", ".", "..") or Path(name).name != name:
                    raise AutomlError(f"bundle file name '{name}' is taken or not a plain name")
                data = content.encode() if isinstance(content, str) else content
                (staging / name).write_bytes(data)
                files.append(name)
            hashes = {name: sha256(staging / name) for name in files}
            manifest = dict(self.manifest, files=hashes)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            (staging / CHECKSUM).write_text(sha256(staging / MANIFEST) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, recorded: tuple[str, str] | None = None) -> Model:
        """Load a bundle (or the bundle of a run directory), checking each file's hash.

        The manifest must list ``pipeline.joblib``; the bytes unpickled are the bytes whose
        hash was checked (read once), and with ``recorded`` (the manifest and pipeline
        SHA-256 a registry recorded at registration) they must also be those. Unpickling
        runs code: load only bundles you trust.
        """
        bundle = resolve_bundle(Path(path))
        manifest = read_manifest(bundle, recorded[0] if recorded else None)
        files = manifest.get("files")
        if not isinstance(files, dict) or not isinstance(files.get(PIPELINE), str):
            raise damaged(bundle, f"its manifest does not list '{PIPELINE}' with its SHA-256")
        for name, expected in files.items():
            file = bundle / name
            if name != PIPELINE and (not file.is_file() or sha256(file) != expected):
                raise damaged(bundle, f"'{name}' is missing or does not match its SHA-256")
        pickled = (bundle / PIPELINE).read_bytes() if (bundle / PIPELINE).is_file() else b""
        digest = hashlib.sha256(pickled).hexdigest()
        if digest != files[PIPELINE] or (recorded and digest != recorded[1]):
            raise damaged(bundle, f"'{PIPELINE}' is missing or does not match its SHA-256")
        skew = {
            lib: f"{was} -> {now}"
            for lib, now in library_versions().items()
            if (was := manifest.get("versions", {}).get(lib)) and was != now
        }
        if skew:
            log.warning("bundle '%s' was made with other library versions: %s", bundle, skew)
        profile = None
        if (bundle / PROFILE).is_file():
            profile = json.loads((bundle / PROFILE).read_text())
        background = None
        if BACKGROUND in files:  # checked against its SHA-256 above
            background = pd.read_parquet(bundle / BACKGROUND)
        own = (PIPELINE, PROFILE, BACKGROUND)
        extra = {name: (bundle / name).read_bytes() for name in files if name not in own}
        return cls(joblib.load(io.BytesIO(pickled)), manifest, profile, background, extra)


def damaged(bundle: Path, what: str) -> AutomlError:
    return AutomlError(f"bundle '{bundle}' is damaged: {what}; retrain or restore the bundle")


def read_manifest(bundle: Path, recorded: str | None = None) -> dict[str, Any]:
    """The manifest, after checking the bytes read against ``manifest.sha256`` (and the
    ``recorded`` SHA-256, when a registry gives one)."""
    checksum = bundle / CHECKSUM
    if not checksum.is_file():
        raise damaged(bundle, f"'{CHECKSUM}' is missing")
    raw = (bundle / MANIFEST).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != checksum.read_text().strip() or (recorded and digest != recorded):
        raise damaged(bundle, f"'{MANIFEST}' does not match its SHA-256 (edited or truncated)")
    return json.loads(raw)


def resolve_bundle(path: Path) -> Path:
    """A bundle directory, given the bundle itself or a run directory that holds one."""
    for candidate in (path, path / "model"):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise AutomlError(f"no model bundle at '{path}' (expected {MANIFEST} there or in model/)")


def load_model(ref: str | Path, registry: Any = None) -> Model:
    """Load a model by reference: a bundle or run directory, or ``name@alias`` / ``name/3``
    / ``name`` (latest version) in the registry (the default one when ``registry`` is None).
    """
    from automl.bundle.registry import Registry

    if Path(ref).expanduser().exists():
        return Model.load(Path(ref).expanduser())
    return (registry or Registry.default()).load(str(ref))


def pin_model(ref: str | Path, registry: Any = None) -> tuple[Path, tuple[str, str]]:
    """The bundle a reference points at and the SHA-256 of its manifest and pipeline: the
    ones a registry recorded (once it trusts the bundle, as :func:`load_model` does), or a
    bundle or run directory's own as they are now (its manifest checked, nothing
    unpickled). ``Model.load(*pin)`` then loads exactly those bytes, on any machine that
    sees the path, or refuses."""
    from automl.bundle.registry import Registry

    path = Path(ref).expanduser()
    if not path.exists():
        return (registry or Registry.default()).trusted(str(ref))
    bundle = resolve_bundle(path)
    digest = sha256(bundle / MANIFEST)
    files = read_manifest(bundle, digest).get("files")
    pipeline = files.get(PIPELINE) if isinstance(files, dict) else None
    if not isinstance(pipeline, str):
        raise damaged(bundle, f"its manifest does not list '{PIPELINE}' with its SHA-256")
    return bundle, (digest, pipeline)


def in_chunks(frame: pd.DataFrame, score: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """``score(frame)``, ``SCORE_ROWS`` rows at a time (one call for a smaller frame), so a
    big frame's cleaned and typed copies and its feature matrix exist a chunk at a time."""
    if len(frame) <= SCORE_ROWS:
        return score(frame)
    return pd.concat(
        [score(frame.iloc[i : i + SCORE_ROWS]) for i in range(0, len(frame), SCORE_ROWS)]
    )
