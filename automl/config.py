"""Config schemas (structured configs) and the one helper around ``instantiate``.

The dataclasses below are registered in Hydra's ConfigStore as ``train_schema``;
``conf/train.yaml`` lists it first in its defaults, so every group file is merged
into a typed node and a typo'd key or a wrong type fails at start-up naming the key.
"""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf

from automl.errors import ConfigError


@dataclass
class PathsConfig:
    data_dir: str | None = None
    cache_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class CleanConfig:
    na_values: list[str] = field(default_factory=list)
    strip_whitespace: bool = True
    strip_suffix: dict[str, str] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)


@dataclass
class ColumnContract:
    """What one column of a data set must look like (also the contract's runtime form)."""

    dtype: str = "float"  # float | int | bool | category | datetime
    nullable: bool = True
    required: bool = True
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None


@dataclass
class ContractConfig:
    columns: dict[str, ColumnContract] = field(default_factory=dict)
    strict: bool = False


@dataclass
class DatasetConfig:
    name: str = MISSING
    description: str = ""
    intended_use: str = ""  # for the model card
    limitations: str = ""  # for the model card
    target: str = MISSING
    task: str | None = None  # binary | multiclass | regression; None: inferred
    positive_class: Any = None
    source: Any = MISSING
    test_source: Any = None
    clean: CleanConfig = field(default_factory=CleanConfig)
    contract: ContractConfig = field(default_factory=ContractConfig)


@dataclass
class FeatureBlock:
    columns: Any = MISSING  # a list of names, or a selector node with _target_
    steps: list[Any] = field(default_factory=list)


@dataclass
class ParamSpace:
    type: str = "float"  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class AcrossStep:
    """A step across all features after the blocks (``features/<kind>/<option>.yaml``)."""

    step: Any = None  # a node with _target_, or None: no step
    space: dict[str, ParamSpace] = field(default_factory=dict)


@dataclass
class FeaturesConfig:
    name: str = MISSING
    output: str = "default"  # default (numpy) | pandas
    blocks: dict[str, FeatureBlock] = field(default_factory=dict)
    space: dict[str, ParamSpace] = field(default_factory=dict)
    # steps across all features, in this order (features/interactions=..., /selection=...)
    interactions: AcrossStep = field(default_factory=AcrossStep)
    selection: AcrossStep = field(default_factory=AcrossStep)
    decomposition: AcrossStep = field(default_factory=AcrossStep)


@dataclass
class EarlyStoppingConfig:
    validation_fraction: float = 0.1
    fit_params: dict[str, Any] = field(default_factory=dict)
    eval_arguments: str = "eval_set"  # eval_set | eval_X_eval_y (LightGBM >= 4.7)


@dataclass
class FamilyConfig:
    """One model family: its estimators, early stopping and search space."""

    name: str = MISSING
    classifier: Any = None
    regressor: Any = None
    early_stopping: EarlyStoppingConfig | None = None
    space: dict[str, ParamSpace] = field(default_factory=dict)
    classifier_space: dict[str, ParamSpace] = field(default_factory=dict)
    regressor_space: dict[str, ParamSpace] = field(default_factory=dict)
    # the feature sets this family is searched with, each as its own portfolio family
    # (``<family>+<set>``); empty: the run's ``features``
    features: dict[str, FeaturesConfig] = field(default_factory=dict)
    # configurations known to do well across many data sets ({space name: value}), tried
    # in order as the family's first trials after its defaults; keys outside the task's
    # space are left out
    portfolio: list[dict[str, Any]] = field(default_factory=list)
    # log: a regressor fitted on sign(y) * log(1 + |y|), its predictions mapped back (for
    # heavy-tailed targets); a family with it takes part in regression only
    target_transform: str | None = None


@dataclass
class ModelConfig(FamilyConfig):
    """The model: one family (its own keys), or the ``families`` picked from ``candidates``
    (``model=auto``); a model without candidates is a portfolio of one, itself."""

    families: list[str] = field(default_factory=list)  # empty: every candidate
    candidates: dict[str, FamilyConfig] = field(default_factory=dict)
    class_weight: str | None = None  # balanced
    threshold: str | None = None  # a scorer to tune the binary decision threshold for
    calibration: str | None = None  # isotonic | sigmoid: classifier probabilities


@dataclass
class EnsembleConfig:
    size: int = 0  # greedy selection rounds (0: the best trial alone)
    candidates: int = 20  # best trials whose out-of-fold predictions are kept


@dataclass
class ImbalanceConfig:
    share: float = 0.05  # a binary target whose rarer class is below this share ...
    threshold: str | None = "f1"  # ... gets its decision threshold tuned for this scorer


@dataclass
class SearchConfig:
    sampler: Any = MISSING
    n_trials: int | None = 20
    time_budget: float | None = None  # seconds for the whole job; trials in flight stopped
    start_with_defaults: bool = True
    storage: Any = None  # a database URL, a journal file path, or a storage node
    study_name: str = MISSING
    # a shared study: where trials' out-of-fold predictions go (a folder or an artifact store)
    artifacts: Any = None
    heartbeat: int | None = 60  # seconds between a running trial's heartbeats (databases)
    n_jobs: int = 1  # trials at once; more than 1 (or a time budget): worker processes
    finish_share: float = 0.1  # budget share kept for the ensemble, evaluating and saving
    holdout_above: int = 100_000  # rows: one holdout split instead of CV folds above this
    cv_cells_per_second: float = 2800.0  # under a budget: holdout above this x budget cells
    holdout_fraction: float = 0.2
    rank_penalty: float = 2.0  # a family's chance of the next trial / this per better family
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    repeats: Any = 1  # CV repeats: a number, or auto (small data, by rows x budget)
    repeat_max: int = 3
    repeat_headroom: float = 4.0
    bagging: Any = False  # the fold models are the model (no refit): true | false | auto
    bag_below_rows: int = 10_000  # auto: bag at most this many training rows
    imbalance: ImbalanceConfig = field(default_factory=lambda: ImbalanceConfig())


@dataclass
class EvaluationConfig:
    test_size: float = 0.2
    stratify: bool = True
    cv_folds: int = 5
    split: str = "random"  # random | group | time: the test rows and the CV folds
    group_column: str | None = None  # split=group: no group on both sides (not an input)
    time_column: str | None = None  # split=time: train on the past, test on the future
    weight_column: str | None = None  # each row's weight in fitting and scoring (not an input)
    keep_duplicates_together: bool = True  # exact duplicate rows never on both sides
    max_classes: int = 20
    cv_metric: dict[str, str] = field(default_factory=dict)
    report: dict[str, dict[str, str]] = field(default_factory=dict)
    plots: bool = True
    slices: list[str] = field(default_factory=list)  # columns the model card slices by
    bootstrap: int = 200  # resamples of the test predictions for the card's intervals
    importance_rows: int = 2000  # test rows permutation importance shuffles (0: none)
    background_rows: int = 100  # training rows kept in the bundle for explanations


@dataclass
class RegistryConfig:
    enabled: bool = True  # register every successful run as a new model version
    uri: str = MISSING  # the registry's database: a path (SQLite), or an SQLite/PostgreSQL URL
    store: str = MISSING  # where registered bundles are kept: a folder or an fsspec URL
    name: str = MISSING  # the registered model's name, <project>.<dataset> by default
    signing_key: str | None = None  # HMAC key: each version is signed, only signed ones load
    cache: str | None = None  # where bundles from a URL store are fetched to


@dataclass
class ProfileConfig:
    bins: int = 10
    top_categories: int = 50


@dataclass
class KindTests:
    """The drift test of one column kind for small and for large windows: a name from
    ``drift.tests`` or a node with ``_target_``."""

    small: Any = MISSING
    large: Any = MISSING


@dataclass
class MissingRateRule:
    max_change: float = 0.05
    p_value: float = 0.01


@dataclass
class NewCategoryRule:
    max_rate: float = 0.05


@dataclass
class ShareRule:
    warning: float = 0.0
    drift: float = 0.5


@dataclass
class RejectedRowsRule:
    max_share: float = 0.05
    status: str = "warning"


@dataclass
class DriftConfig:
    large_sample: int = 1000
    min_values: int = 30
    tests: dict[str, Any] = field(default_factory=dict)  # name -> node with _target_
    numeric: KindTests = field(default_factory=KindTests)
    categorical: KindTests = field(default_factory=KindTests)
    columns: dict[str, Any] = field(default_factory=dict)  # column -> test name or node
    missing_rate: MissingRateRule = field(default_factory=MissingRateRule)
    new_categories: NewCategoryRule = field(default_factory=NewCategoryRule)
    share: ShareRule = field(default_factory=ShareRule)
    prediction: str = "warning"
    rejected_rows: RejectedRowsRule = field(default_factory=RejectedRowsRule)


@dataclass
class PerformanceConfig:
    min_labels: int = 100
    tolerance: dict[str, float] = field(default_factory=dict)  # metric -> relative drop
    status: str = "drift"


@dataclass
class WindowConfig:
    rows: int | None = 1000
    seconds: float | None = None


@dataclass
class AlertsConfig:
    min_status: str = "warning"
    cooldown_s: float = 3600.0
    state: str = MISSING
    sinks: list[Any] = field(default_factory=list)  # nodes with _target_


@dataclass
class MonitoringConfig:
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    exit_codes: dict[str, int] = field(default_factory=dict)  # status -> exit code
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    history: str | None = None  # a JSON-lines file each verdict is appended to (the dashboard)


@dataclass
class TrainConfig:
    project: str = "default"
    seed: int = 42
    n_jobs: int = 2
    progress: bool = True  # the search's progress: a live line on a terminal, else log lines
    progress_every: int = 10  # finished trials between two progress log lines (not a terminal)
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tracking: Any = None  # a node with _target_ building a tracker (see automl/tracking.py)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


@dataclass
class RegistryLocation:
    """Where the registry is: its database and its bundle store (conf/common/registry/)."""

    uri: str = MISSING
    store: str = MISSING  # a folder or an fsspec URL
    signing_key: str | None = None  # HMAC key: only versions signed with it are loaded
    cache: str | None = None  # where bundles from a URL store are fetched to


@dataclass
class PredictConfig:
    model: str = MISSING
    input: str = MISSING
    output: str = MISSING
    keep_columns: bool = True
    chunk_size: int = 100_000
    rejects: str | None = None  # None: <output stem>.rejects.<output suffix>
    on_bad_rows: str = "quarantine"  # fail | skip | quarantine (automl.data.bad_rows)
    n_jobs: int = 2
    progress: bool = True
    explain: bool = False  # add each input column's contribution (automl.bundle.explain)
    explainer: dict[str, Any] = field(default_factory=dict)  # its settings (explainer group)
    compiled: dict[str, Any] = field(default_factory=dict)  # how the model compiles (group)
    engine: dict[str, Any] = field(default_factory=dict)  # where it scores (group); {}: here
    registry: RegistryLocation = field(default_factory=RegistryLocation)
    paths: PathsConfig = field(default_factory=PathsConfig)
    formats: dict[str, Any] = field(default_factory=dict)


@dataclass
class MonitorConfig:
    """``python -m automl.monitor``: the app's own keys (the checks are in ``monitoring``)."""

    model: str = MISSING
    input: str = MISSING
    output: str | None = None  # the report's folder; None: the run directory
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    set: list[str] = field(default_factory=list)  # key=value overrides of ``monitoring``
    alerts: bool = True
    chunk_size: int = 100_000
    registry: RegistryLocation = field(default_factory=RegistryLocation)
    paths: PathsConfig = field(default_factory=PathsConfig)
    formats: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestLimits:
    max_categories: int = 50
    min_parsed: float = 0.95
    identifier_min_rows: int = 50
    text_min_length: float = 30.0
    text_min_words: float = 3.0


@dataclass
class IngestContract:
    range_margin: float | None = 0.1  # None: no range checks
    max_allowed: int = 50


@dataclass
class IngestReport:
    enabled: bool = True
    leakage_threshold: float = 0.98
    max_plots: int = 40
    max_rows: int = 100_000


@dataclass
class IngestConfig:
    input: str = MISSING
    target: str = MISSING
    name: str = MISSING
    task: str | None = None
    positive_class: Any = None
    conf_dir: str = "automl_conf"
    output_format: str = "parquet"
    read: dict[str, Any] = field(default_factory=dict)
    chunk_size: int = 100_000
    sample_rows: int = 20_000
    on_bad_rows: str = "fail"  # fail | skip | quarantine (automl.data.bad_rows)
    drop_kinds: list[str] = field(default_factory=list)
    max_classes: int = 20
    max_download_bytes: int | None = 2 * 1024**3  # an http(s) input; null: no limit
    max_decompressed_bytes: int | None = 10 * 1024**3  # per read of a compressed input
    limits: IngestLimits = field(default_factory=IngestLimits)
    contract: IngestContract = field(default_factory=IngestContract)
    report: IngestReport = field(default_factory=IngestReport)
    progress: bool = True
    paths: PathsConfig = field(default_factory=PathsConfig)
    formats: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServeCache:
    size: int = 16
    max_memory_mb: float | None = 2048.0  # MiB the loaded models may hold (None: no bound)
    resolve_ttl: float = 1.0


@dataclass
class AuthLocation:
    """Where the identity database is (the ``auth`` group, conf/common/auth/)."""

    url: str = MISSING  # any SQLAlchemy URL


@dataclass
class ServeAuth(AuthLocation):
    cache_ttl: float = 5.0


@dataclass
class ServeLimits:
    max_body_bytes: int = 10_485_760
    max_batch_rows: int = 100_000
    max_concurrent_requests: int = 64
    request_timeout: float = 60.0


@dataclass
class FastPathConfig:
    enabled: bool = True
    max_rows: int = 16


@dataclass
class LogLocation:
    """Where the prediction log is (the ``prediction_log`` group, conf/common/)."""

    store: Any = MISSING  # a node with _target_ building the store, or a path or URL


@dataclass
class PredictionLogConfig(LogLocation):
    enabled: bool = True
    batch_size: int = 500
    flush_seconds: float = 1.0
    queue_size: int = 100_000
    close_timeout: float | None = 300.0  # seconds shutdown waits for the queue (None: no limit)


@dataclass
class ServeMetrics:
    latency_buckets: list[float] = field(default_factory=list)
    public: bool = False  # /metrics shows every model to anyone (else: the caller's projects)


@dataclass
class ServeUi:
    enabled: bool = True
    session_secret: str | None = None  # signs session cookies (None: a new one per start)
    session_hours: float = 8.0
    secure_cookie: bool = False
    page_size: int = 50
    runs_dirs: list[str] = field(default_factory=list)
    conf_dirs: list[str] = field(default_factory=list)
    refresh_seconds: float = 5.0


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    access_log: bool = False
    preload: list[str] = field(default_factory=list)
    registry: RegistryLocation = field(default_factory=RegistryLocation)
    cache: ServeCache = field(default_factory=ServeCache)
    auth: ServeAuth = field(default_factory=ServeAuth)
    limits: ServeLimits = field(default_factory=ServeLimits)
    fast_path: FastPathConfig = field(default_factory=FastPathConfig)
    compiled: dict[str, Any] = field(default_factory=dict)  # how models compile (group)
    contributions: dict[str, Any] = field(default_factory=dict)  # {estimator: path, explain: node}
    prediction_log: PredictionLogConfig = field(default_factory=PredictionLogConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    metrics: ServeMetrics = field(default_factory=ServeMetrics)
    ui: ServeUi = field(default_factory=ServeUi)
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class BackupConfig:
    """``python -m automl.backup``: where archives go (or the one to restore), which stores,
    and where each store is (the same keys as training and serving)."""

    to: str = MISSING  # the folder of the archives
    restore: str | None = None  # an archive to restore (into the locations below)
    stores: list[str] = field(default_factory=list)  # registry | auth | prediction_log | tracking
    pg_bin: list[str] = field(default_factory=list)  # pg_dump/pg_restore folders after PATH
    paths: PathsConfig = field(default_factory=PathsConfig)
    registry: RegistryLocation = field(default_factory=RegistryLocation)
    tracking: Any = None  # the tracking group's node (tracking.uri: the MLflow store)
    auth: AuthLocation = field(default_factory=AuthLocation)
    prediction_log: LogLocation = field(default_factory=LogLocation)


@dataclass
class SharedConfig:
    """``conf/common/shared.yaml``: the shared groups alone (``load_monitoring``, the
    default registry)."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    registry: RegistryLocation = field(default_factory=RegistryLocation)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_name(name: Any) -> str:
    """A name that becomes a file or folder name (a data set's): letters, digits, ``_.-``,
    not starting with ``.`` or ``-``, so that no output lands outside its folder."""
    name = str(name)
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"name {name!r} cannot name a data set: use letters, digits, '_', '.' and '-' "
            "(not first), no path separators, e.g. name=my_data"
        )
    return name


def safe_name(name: Any) -> str:
    """``name`` with every character :func:`check_name` refuses replaced by ``_`` (for a
    folder Hydra makes before the job can refuse the name itself)."""
    return re.sub(r"^[.-]|[^A-Za-z0-9_.-]", "_", str(name)) or "_"


def register_schemas() -> None:
    """Register the schemas in Hydra's ConfigStore (called before composing) and the
    ``safe_name`` resolver (``${safe_name:${name}}`` in a path stays inside its folder)."""
    if not OmegaConf.has_resolver("safe_name"):
        OmegaConf.register_new_resolver("safe_name", safe_name)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="predict_schema", node=PredictConfig)
    store.store(name="ingest_schema", node=IngestConfig)
    store.store(name="monitor_schema", node=MonitorConfig)
    store.store(name="serve_schema", node=ServeConfig)
    store.store(name="shared_schema", node=SharedConfig)
    store.store(name="backup_schema", node=BackupConfig)


def build(node: Any, /, **kwargs: Any) -> Any:
    """Build an object from a config node with ``_target_`` (the only call to instantiate).

    Containers are converted to plain Python (``_convert_="all"``) so libraries that
    check parameter types (scikit-learn) accept them.
    """
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        where = ""
        if isinstance(node, DictConfig) and node._get_full_key(None):
            where = f" at '{node._get_full_key(None)}'"
        raise ConfigError(f"cannot build the object{where}: {exc}") from exc


def to_plain(node: Any) -> Any:
    """A config node as plain Python containers (interpolations resolved)."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def sqlite_path(url: str) -> Path | None:
    """The absolute file of a ``sqlite:///<path>`` URL (also ``sqlite:///file:<path>?...``);
    None for any other store or an in-memory database."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").partition("?")[0].removeprefix("file:")
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser().resolve()


INTERPOLATION = re.compile(r"(\\*)\$\{")  # '${' and the backslashes before it


def escape_interpolation(text: str) -> str:
    """``text`` as OmegaConf reads back literally: each ``${`` escaped as ``\\${`` (and the
    backslashes before it doubled), so that composing it interpolates nothing."""
    if "${" not in text:
        return text
    return INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)


def as_data(value: Any) -> Any:
    """Plain ``value`` with every string escaped (:func:`escape_interpolation`): data that
    becomes config (generated YAML, a resolved config read back) stays literal."""
    if isinstance(value, str):
        return escape_interpolation(value)
    if isinstance(value, dict):
        return {str(k): as_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_data(v) for v in value]
    return value


COMMON = "automl.conf.common"  # the groups every command shares (conf/common/)
FILE_GROUPS = ("monitoring",)  # groups whose option may also be the path of a YAML file


def file_options(overrides: list[str], groups: tuple[str, ...] = FILE_GROUPS) -> list[str]:
    """Hydra overrides with ``group=path/to/file.yaml`` made an option of ``group``.

    The file becomes option ``file_<hash>`` of the group, merged over the group's
    ``default`` (as a shipped option that lists ``defaults: [default, _self_]``), in a
    temporary folder added to Hydra's search path. Other overrides pass unchanged.
    """
    out: list[str] = []
    folder: Path | None = None
    for item in overrides:
        key, sep, value = item.partition("=")
        if not (sep and key in groups and value.endswith((".yaml", ".yml"))):
            out.append(item)
            continue
        path = Path(value).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{key}={value}: no such file (a {key} option or a YAML file)")
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="automl-conf-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
        option = "file_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        (folder / key).mkdir(exist_ok=True)
        (folder / key / f"{option}_own.yaml").write_text(path.read_text(encoding="utf-8"))
        defaults = {"defaults": ["default", f"{option}_own", "_self_"]}
        (folder / key / f"{option}.yaml").write_text(yaml.safe_dump(defaults))
        out.append(f"{key}={option}")
    if folder is not None:
        out.append(f"hydra.searchpath=[pkg://{COMMON},file://{folder}]")
    return out


COMPOSING = threading.Lock()  # Hydra's state is one per process: one composition at a time


def compose_config(
    module: str, name: str, overrides: list[str] | None = None, with_hydra: bool = False
) -> DictConfig:
    """The config ``name`` of the config package ``module`` composed as its command would
    (schemas registered, file options allowed); a bad override is a ConfigError.

    Safe from any thread, and leaves Hydra's global state as it found it. ``with_hydra``
    keeps the ``hydra`` node (run directory, logging) in the result."""
    register_schemas()
    with COMPOSING:
        running = GlobalHydra.instance()  # inside a Hydra command: set its state aside
        outer = running.hydra if running.is_initialized() else None
        running.clear()
        try:
            with initialize_config_module(module, version_base="1.3"):
                options = file_options(list(overrides or []))
                return compose(name, overrides=options, return_hydra_config=with_hydra)
        except HydraException as exc:
            message = " ".join(line.strip() for line in str(exc).splitlines())
            raise ConfigError(message) from exc
        finally:
            if outer is not None:
                GlobalHydra.instance().clear()
                GlobalHydra.instance().initialize(outer)
