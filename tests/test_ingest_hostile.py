"""Ingest treats its input as untrusted: hostile column names and values stay data in the
generated YAML, the data set name cannot leave ``conf_dir``, and sizes are bounded."""

from __future__ import annotations

import gzip
import http.server
import itertools
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAST, run_cli
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from automl.config import as_data, compose_config, escape_interpolation, register_schemas
from automl.errors import ConfigError, DataError
from automl.services.ingest import ingest

HOSTILE = [
    "line\nbreak",
    "hash # comment",
    "${oc.env:HOME}",
    "@package _global_",
    "# @package _global_",
    "_target_",
    'x\ntest_source: {_target_: os.system, _args_: ["echo pwned"]} #',
    'it\'s "quoted"',
    "back\\slash \\${oc.env:HOME} \\\\${x}",
    "ünïcödé 字 ☃",
    "${",
    "x: y",
]
LABELS = ["${oc.env:HOME}", "a\n# b", "_target_"]


def ingest_cfg(overrides: list[str]):
    register_schemas()
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        return compose("ingest", overrides=["progress=false", "report.enabled=false", *overrides])


def hostile_frame(rows: int = 60) -> pd.DataFrame:
    """Numeric columns named with every hostile string, a categorical column with them as
    values, and a 3-class target with hostile labels."""
    data = {
        name: [float((i * (k + 3)) % 17) for i in range(rows)] for k, name in enumerate(HOSTILE)
    }
    data["kind"] = [HOSTILE[i % len(HOSTILE)] for i in range(rows)]
    data["label"] = [LABELS[i % len(LABELS)] for i in range(rows)]
    return pd.DataFrame(data)


def compose_ingested(conf: Path, name: str, extra: list[str] | None = None):
    """The training config composed with the written data set YAML, as training does."""
    return compose_config(
        "automl.conf",
        "train",
        [
            f"hydra.searchpath=[pkg://automl.conf.common,file://{conf}]",
            f"dataset={name}",
            *(extra or []),
        ],
    )


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_hostile_names_and_values_stay_data(tmp_path, suffix):
    frame = hostile_frame()
    source = tmp_path / f"hostile.{suffix}"
    if suffix == "json":
        frame.to_json(source, orient="records")
    else:
        frame.to_csv(source, index=False)
    conf = tmp_path / "conf"
    ingest(ingest_cfg([f"input={source}", "target=label", "name=hostile", f"conf_dir={conf}"]))
    text = (conf / "dataset" / "hostile.yaml").read_text()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert all("pwned" not in c and "@package" not in c and "$" not in c for c in comments)

    reference = compose_config("automl.conf", "train", ["dataset=iris"])
    cfg = compose_ingested(conf, "hostile")
    assert set(cfg) == set(reference)  # no test_source or other injected top-level key
    assert set(cfg.dataset) <= set(reference.dataset)
    assert cfg.dataset.get("test_source") is None
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    columns = dataset["contract"]["columns"]
    assert set(columns) == {*HOSTILE, "kind", "label"}
    assert columns["kind"]["allowed"] == sorted(HOSTILE)
    assert columns["label"]["allowed"] == sorted(LABELS)
    assert dataset["target"] == "label"
    for name in HOSTILE:
        assert columns[name]["dtype"] in ("int", "float")


def test_hostile_data_set_trains(tmp_path):
    source = tmp_path / "hostile.json"
    hostile_frame().to_json(source, orient="records")
    conf = tmp_path / "conf"
    ingest(ingest_cfg([f"input={source}", "target=label", "name=hostile", f"conf_dir={conf}"]))
    from automl.services.training import train

    cfg = compose_ingested(conf, "hostile", ["model=linear", *FAST, "registry.enabled=false"])
    metrics = train(cfg, tmp_path / "run")
    assert "accuracy" in metrics
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    assert sorted(manifest["classes"]) == sorted(LABELS)  # the literal labels, not $HOME
    assert manifest["contract"]["columns"]["kind"]["allowed"] == sorted(HOSTILE)
    assert set(HOSTILE) <= set(manifest["features"])


def test_escaped_strings_read_back_literally():
    """Every string of '\\', '$', '{', '}', 'a' up to length 5 survives OmegaConf."""
    for length in range(1, 6):
        for chars in itertools.product("\\${}a", repeat=length):
            text = "".join(chars)
            node = OmegaConf.create({"v": escape_interpolation(text), "l": [as_data(text)]})
            assert node.v == text and node.l[0] == text, text


@pytest.mark.parametrize("column", ["", "   "])
def test_unusable_column_name_refused(tmp_path, column):
    source = tmp_path / "blank.json"
    pd.DataFrame({column: [1.0, 2.0, 3.0] * 5, "y": ["a", "b", "c"] * 5}).to_json(
        source, orient="records"
    )
    conf = tmp_path / "conf"
    with pytest.raises(DataError, match="column name"):
        ingest(ingest_cfg([f"input={source}", "target=y", "name=blank", f"conf_dir={conf}"]))
    assert not (conf / "dataset").exists()


@pytest.mark.parametrize("name", ["../../evil", "..", ".", "a/b", "-x", "", "a b", "x\\y"])
def test_data_set_name_cannot_leave_conf_dir(tmp_path, name):
    source = tmp_path / "d.csv"
    pd.DataFrame({"x": range(20), "y": ["alpha", "beta"] * 10}).to_csv(source, index=False)
    conf = tmp_path / "a" / "b" / "conf"
    cfg = ingest_cfg([f"input={source}", "target=y", "name=placeholder", f"conf_dir={conf}"])
    cfg.name = name
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="name"):
        ingest(cfg)
    assert sorted(tmp_path.rglob("*")) == before


def big_csv(rows: int = 5000) -> bytes:
    frame = pd.DataFrame({"x": [i % 7 for i in range(rows)], "y": ["alpha", "beta"] * (rows // 2)})
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("compression", ["gz", "zip"])
def test_decompressed_size_limited(tmp_path, compression):
    data = big_csv()
    if compression == "gz":
        source = tmp_path / "big.csv.gz"
        source.write_bytes(gzip.compress(data))
    else:
        source = tmp_path / "big.zip"
        with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("big.csv", data)
    assert source.stat().st_size < 4000 < len(data)
    conf = tmp_path / "conf"
    base = [f"input={source}", "target=y", "name=big", f"conf_dir={conf}"]
    with pytest.raises(DataError, match="max_decompressed_bytes"):
        ingest(ingest_cfg([*base, "max_decompressed_bytes=4000"]))
    assert not (conf / "dataset").exists()
    summary = ingest(ingest_cfg(base))  # the default limit lets it through
    assert summary["written"] == 5000


@pytest.fixture
def http_server(tmp_path) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / 'www'`` (``/nolength/<file>``:
    without a Content-Length, so only counting the bytes can stop it)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            declare = not self.path.startswith("/nolength/")
            body = (root / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            if declare:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("route", ["", "/nolength"])
def test_download_size_limited(tmp_path, http_server, route):
    (tmp_path / "www" / "big.csv").write_bytes(big_csv())
    cache, conf = tmp_path / "cache", tmp_path / "conf"
    base = [
        f"input={http_server}{route}/big.csv",
        "target=y",
        "name=big",
        f"conf_dir={conf}",
        f"paths.cache_dir={cache}",
    ]
    with pytest.raises(DataError, match="max_download_bytes"):
        ingest(ingest_cfg([*base, "max_download_bytes=4000"]))
    assert not [p for p in cache.rglob("*") if p.is_file()]  # the partial file is gone
    assert ingest(ingest_cfg(base))["written"] == 5000


def test_the_command_refuses_a_name_that_leaves_conf_dir(tmp_path):
    """Through the real command: Hydra's run folder (``reports/<name>``) stays inside
    ``conf_dir`` too, and the name is refused in one line."""
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    (work / "d.csv").write_text("a,b\n1,2\n3,4\n")
    result = run_cli(
        "automl.ingest", "input=d.csv", "target=b", "name=../../../evil", "conf_dir=c", cwd=work
    )
    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(errors) == 1 and "name '../../../evil' cannot name a data set" in errors[0]
    outside = [p for p in tmp_path.rglob("*") if "evil" in p.name and "c/reports" not in str(p)]
    assert not outside
    assert not list((work / "c").rglob("*.yaml"))
