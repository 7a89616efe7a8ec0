"""The readers of `python -m automl.ingest`: every format, real data, exact row numbers and
one clear error per bad input."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.server
import json
import sqlite3
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import ADULT_COLUMNS, SHARED_DATA, needs_shared_data
from hydra import compose, initialize_config_module
from sklearn.datasets import dump_svmlight_file, load_iris, load_wine

from automl.config import register_schemas
from automl.errors import ConfigError, DataError
from automl.ingest import readers
from automl.ingest.readers import base
from automl.io import read_chunks


@functools.cache
def formats():
    """The formats registry as `python -m automl.ingest` composes it."""
    register_schemas()
    with initialize_config_module("automl.conf.apps", version_base="1.3"):
        return compose("ingest").formats


def open_table(source, options=None, cache_dir=None, on_bad_rows="fail"):
    """``source`` opened by ingest's reader for its format."""
    return readers.open_table(source, formats(), options, cache_dir, on_bad_rows)


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame


def all_chunks(table, size: int) -> tuple[pd.DataFrame, list[int]]:
    chunks = list(table.chunks(size))
    return pd.concat(chunks), [len(c) for c in chunks]


def write_zip(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, data)


# name -> (writer(frame, folder) -> source, options, first row number)
FORMATS = {
    "csv": (lambda f, d: f.to_csv(d / "w.csv", index=False), {}, 2),
    "csv_no_header": (lambda f, d: f.to_csv(d / "w.csv", index=False, header=False), "names", 1),
    "tsv": (lambda f, d: f.to_csv(d / "w.tsv", sep="\t", index=False), {}, 2),
    "semicolon": (lambda f, d: f.to_csv(d / "w.txt", sep=";", index=False), {}, 2),
    "csv_gz": (
        lambda f, d: (d / "w.csv.gz").write_bytes(gzip.compress(f.to_csv(index=False).encode())),
        {},
        2,
    ),
    "csv_bz2": (
        lambda f, d: (d / "w.csv.bz2").write_bytes(bz2.compress(f.to_csv(index=False).encode())),
        {},
        2,
    ),
    "zip": (lambda f, d: write_zip(d / "w.zip", "wine.csv", f.to_csv(index=False).encode()), {}, 2),
    "excel": (lambda f, d: f.to_excel(d / "w.xlsx", index=False), {}, 1),
    "parquet": (lambda f, d: f.to_parquet(d / "w.parquet"), {}, 1),
    "feather": (lambda f, d: f.to_feather(d / "w.feather"), {}, 1),
    "json_records": (lambda f, d: f.to_json(d / "w.json", orient="records"), {}, 1),
    "json_columnar": (
        lambda f, d: (d / "w.json").write_text(json.dumps({c: f[c].tolist() for c in f})),
        {},
        1,
    ),
    "json_pandas_columns": (lambda f, d: f.to_json(d / "w.json"), {}, 1),
    "json_pandas_split": (lambda f, d: f.to_json(d / "w.json", orient="split"), {}, 1),
    "json_pandas_table": (lambda f, d: f.to_json(d / "w.json", orient="table"), {}, 1),
    "json_pandas_index": (lambda f, d: f.to_json(d / "w.json", orient="index"), {}, 1),
    "jsonl": (lambda f, d: f.to_json(d / "w.jsonl", orient="records", lines=True), {}, 1),
    "sqlite_table": (
        lambda f, d: f.to_sql("wine", sqlite3.connect(d / "w.db"), index=False),
        {},
        1,
    ),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips_in_chunks(tmp_path, wine, fmt):
    writer, options, first = FORMATS[fmt]
    writer(wine, tmp_path)
    (path,) = list(tmp_path.iterdir())
    source = str(path)
    if options == "names":
        options = {"names": list(wine.columns)}
    if fmt.startswith("sqlite"):
        source, options = f"sqlite:///{path}", {"table": "wine"}
    table = open_table(source, options, str(tmp_path / "cache"))

    sample = table.sample(5)
    assert list(sample.columns) == list(wine.columns)
    assert sample.index.tolist() == list(range(first, first + 5))

    frame, sizes = all_chunks(table, 50)
    assert sizes == [50, 50, 50, 28]  # every row exactly once, in order
    assert frame.index.tolist() == list(range(first, first + 178))
    assert frame.shape == wine.shape
    assert list(frame.columns) == list(wine.columns)
    np.testing.assert_allclose(frame["alcohol"].to_numpy(float), wine["alcohol"].to_numpy())
    assert frame["proline"].iloc[-1] == pytest.approx(wine["proline"].iloc[-1])
    assert frame["target"].tolist() == wine["target"].tolist()


def test_libsvm_is_dense_with_a_label_column(tmp_path, wine):
    features = wine.drop(columns="target")
    dump_svmlight_file(features.to_numpy(), wine["target"].to_numpy(), str(tmp_path / "w.svm"))
    table = open_table(str(tmp_path / "w.svm"), {}, None)
    frame, sizes = all_chunks(table, 100)
    assert sizes == [100, 78]
    assert list(frame.columns) == ["label"] + [f"f{i}" for i in range(13)]
    assert frame.index.tolist() == list(range(1, 179))  # line numbers
    np.testing.assert_allclose(frame["f0"], features["alcohol"])
    np.testing.assert_allclose(frame["f12"], features["proline"])
    assert frame["label"].tolist() == wine["target"].tolist()

    named = open_table(str(tmp_path / "w.svm"), {"names": ["cultivar", *features.columns]}, None)
    assert list(named.sample(2).columns) == ["cultivar", *features.columns]


def test_sql_query(tmp_path, wine):
    with sqlite3.connect(tmp_path / "w.db") as con:
        wine.to_sql("wine", con, index=False)
    query = "SELECT alcohol, target FROM wine WHERE target = 2 ORDER BY alcohol"
    table = open_table(f"sqlite:///{tmp_path / 'w.db'}", {"query": query}, None)
    frame, _ = all_chunks(table, 20)
    expected = wine.loc[wine["target"] == 2, "alcohol"].sort_values()
    assert frame.shape == (len(expected), 2)
    assert frame["alcohol"].tolist() == pytest.approx(expected.tolist())
    # a database file with a query works too
    assert open_table(str(tmp_path / "w.db"), {"query": query}, None).sample(3).shape == (3, 2)


def test_url_is_downloaded_into_the_cache(tmp_path, wine):
    served = tmp_path / "served"
    served.mkdir()
    (served / "wine.csv.gz").write_bytes(gzip.compress(wine.to_csv(index=False).encode()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/wine.csv.gz"
    cache = tmp_path / "cache"
    try:
        frame, _ = all_chunks(open_table(url, {}, str(cache)), 1000)
        assert frame.shape == wine.shape
        with pytest.raises(DataError, match="cannot download .*missing.csv.*404"):
            open_table(url.replace("wine.csv.gz", "missing.csv"), {}, str(cache))
    finally:
        server.shutdown()
    assert open_table(url, {}, str(cache)).sample(3).shape == (3, 14)  # from the cache
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["wine.csv.gz"]  # no temp files


@needs_shared_data
def test_adult_train_with_names():
    table = open_table(str(SHARED_DATA / "adult-train.csv"), {"names": ADULT_COLUMNS}, None)
    assert table.detected["sep"] == "," and table.detected["header"] is False
    frame, sizes = all_chunks(table, 10_000)
    assert sizes == [10_000, 10_000, 10_000, 2_561]
    assert frame.shape == (32_561, 15)
    assert frame.index.tolist() == list(range(1, 32_562))  # the trailing blank line is no row
    assert frame["age"].iloc[0] == 39 and frame["workclass"].iloc[0] == "State-gov"
    assert frame["workclass"].isna().sum() == 1836  # "?" is missing
    assert frame["native-country"].isna().sum() == 583
    assert set(frame["income"]) == {"<=50K", ">50K"}
    assert not table.bad_rows


@needs_shared_data
def test_adult_header_is_detected_absent():
    table = open_table(str(SHARED_DATA / "adult-test.csv"), {}, None)
    sample = table.sample(10)
    assert table.detected["header"] is False
    assert sample.shape == (10, 15) and sample.columns[0] == "column_1"
    assert sample.index.tolist() == list(range(1, 11))


def test_line_numbers_count_blank_lines_headers_and_multiline_fields(tmp_path):
    text = (
        "name,score,note\r\n"  # 1
        "a,1,plain\r\n"  # 2
        "\r\n"  # 3 blank
        'b,2,"two\r\nlines"\r\n'  # 4-5
        "c,3,x,extra\r\n"  # 6 ragged
        "   \r\n"  # 7 blank
        'd,4,"say ""hi"""\r\n'  # 8
        "e,?,last"  # 9, no final newline
    )
    (tmp_path / "t.csv").write_bytes(text.encode())
    table = open_table(str(tmp_path / "t.csv"), {}, None, on_bad_rows="quarantine")
    frame, _ = all_chunks(table, 2)
    assert frame.index.tolist() == [2, 4, 8, 9]
    assert frame["name"].tolist() == ["a", "b", "d", "e"]
    assert frame["note"].tolist() == ["plain", "two\r\nlines", 'say "hi"', "last"]
    assert frame["score"].isna().tolist() == [False, False, False, True]
    assert table.bad_rows == [
        {
            "row": 6,
            "raw": "c,3,x,extra",
            "reason": "4 fields, expected 3 (as in the header; separator ',')",
        }
    ]


def test_block_boundaries_do_not_move_rows(tmp_path, monkeypatch):
    """Tiny read blocks: quoted multi-line records and ragged lines across block ends."""
    iris = load_iris(as_frame=True).frame
    iris["comment"] = [f'note, "{i}"\nmore' if i % 7 == 0 else f"n{i}" for i in range(len(iris))]
    text = iris.head(0).to_csv(index=False)
    line = 2  # the next record's first line
    starts, bad_lines = [], []
    for i in range(len(iris)):
        if i in (10, 57, 58, 140):
            text += "1,2,3,4,5,6,7\n"
            bad_lines.append(line)
            line += 1
        record = iris.iloc[[i]].to_csv(index=False, header=False)
        starts.append(line)
        text += record
        line += record.count("\n")
    path = tmp_path / "iris.csv"
    path.write_text(text)
    monkeypatch.setattr(base, "BLOCK_CHARS", 300)
    table = open_table(str(path), {}, None, on_bad_rows="skip")
    frame, sizes = all_chunks(table, 40)
    assert sizes == [40, 40, 40, 30]  # chunks stay full when ragged rows are dropped
    assert frame.index.tolist() == starts
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), iris, check_dtype=False)
    assert [bad["row"] for bad in table.bad_rows] == bad_lines
    assert {bad["raw"] for bad in table.bad_rows} == {"1,2,3,4,5,6,7"}


def test_encoding_auto_reads_cp1252_and_an_explicit_one_names_the_line(tmp_path, wine):
    text = wine.head(10).to_csv(index=False)
    lines = text.splitlines(keepends=True)
    lines[4] = lines[4].replace("1", "é", 1)  # line 5: one cp1252 byte
    (tmp_path / "w.csv").write_bytes("".join(lines).encode("cp1252"))
    auto = open_table(str(tmp_path / "w.csv"), {}, None)
    assert auto.detected["encoding"] == "cp1252"
    assert "é" in str(auto.sample(10).iloc[3].tolist())
    with pytest.raises(DataError, match=r"w\.csv' line 5: byte 0xe9 at column \d+ .*utf-8"):
        open_table(str(tmp_path / "w.csv"), {"encoding": "utf-8"}, None)


def test_undecodable_byte_deep_in_the_file_names_its_line(tmp_path, wine):
    body = wine.to_csv(index=False).encode() * 30  # ~ 5,000 lines, past the probe
    bad_line = body.count(b"\n") + 1
    (tmp_path / "w.csv").write_bytes(body + b"13.2,\xff1.78\n")
    table = open_table(str(tmp_path / "w.csv"), {"encoding": "utf-8"}, None)
    with pytest.raises(DataError, match=f"line {bad_line}: byte 0xff at column 6"):
        all_chunks(table, 1000)
    # with encoding auto the stray byte is read as cp1252 instead
    frame, _ = all_chunks(open_table(str(tmp_path / "w.csv"), {}, None), 100_000)
    assert frame["malic_acid"].iloc[-1] == "ÿ1.78"


def test_ragged_row_fails_with_its_line_number(tmp_path, wine):
    lines = wine.head(20).to_csv(index=False).splitlines(keepends=True)
    lines[6] = lines[6].rstrip("\n") + ",99\n"  # line 7
    (tmp_path / "w.csv").write_text("".join(lines))
    table = open_table(str(tmp_path / "w.csv"), {}, None)
    with pytest.raises(DataError, match=r"w\.csv' line 7: 15 fields, expected 14 .*header"):
        all_chunks(table, 100)


def test_ragged_row_is_quarantined_and_the_others_read(tmp_path, wine):
    lines = wine.head(20).to_csv(index=False).splitlines(keepends=True)
    lines[6] = lines[6].rstrip("\n") + ",99\n"  # line 7
    (tmp_path / "w.csv").write_text("".join(lines))
    table = open_table(str(tmp_path / "w.csv"), {}, None, on_bad_rows="quarantine")
    assert len(table.sample(10)) == 10 and not table.bad_rows  # the sample records nothing
    frame, sizes = all_chunks(table, 5)
    assert sizes == [5, 5, 5, 4]
    assert 7 not in frame.index and frame.index.tolist() == [*range(2, 7), *range(8, 22)]
    assert len(table.bad_rows) == 1
    bad = table.bad_rows[0]
    assert bad["row"] == 7 and bad["raw"] == lines[6].rstrip("\n")
    assert "15 fields, expected 14" in bad["reason"]
    assert frame["alcohol"].tolist() == pytest.approx(wine["alcohol"].drop(index=5).head(19))
    list(table.chunks(100))
    assert len(table.bad_rows) == 1  # a new pass starts a new list


def test_bad_jsonl_line_is_quarantined_with_its_line_number(tmp_path, wine):
    lines = wine.head(5).to_json(orient="records", lines=True).splitlines()
    lines.insert(2, '{"alcohol": 1.0,')
    (tmp_path / "w.jsonl").write_text("\n".join(lines) + "\n")
    table = open_table(str(tmp_path / "w.jsonl"), {}, None, on_bad_rows="quarantine")
    frame, _ = all_chunks(table, 10)
    assert frame.index.tolist() == [1, 2, 4, 5, 6]
    assert table.bad_rows[0]["row"] == 3 and "not valid JSON" in table.bad_rows[0]["reason"]
    with pytest.raises(DataError, match="line 3: not valid JSON"):
        all_chunks(open_table(str(tmp_path / "w.jsonl"), {}, None), 10)


def png_bytes() -> bytes:
    """A real 2x2 PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    pixels = b"".join(b"\x00" + bytes([255, 0, 0] * 2) for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", r"empty.csv' is empty"),
        ("header.csv", b"alcohol,malic_acid,target\n", r"header.csv' has no data rows .*header"),
        ("blank.csv", b"\n\n  \n", r"blank.csv' has no data rows"),
        ("image.csv", png_bytes(), r"image.csv' is not delimited text: .*PNG image"),
        ("noise.csv", np.random.default_rng(0).bytes(4096), r"noise.csv' is not delimited text"),
        ("empty.jsonl", b"\n", r"empty.jsonl' has no data rows"),
        ("empty.json", b"[]", r"empty.json' has no data rows"),
        ("broken.json", b'[{"a": 1},\n {"a": 2', r"broken.json' is not valid JSON: .*line 2"),
        ("table.parquet", b"not parquet at all", r"table.parquet' is not a readable parquet"),
        ("data.xyz", b"a,b\n1,2\n", r"unknown file type '.xyz'; known: .*\.csv.*\.parquet"),
    ],
)
def test_bad_inputs_are_one_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_table(str(tmp_path / name), {}, None)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv' does not exist"):
        open_table(str(tmp_path / "nope.csv"), {}, None)


def test_bad_sql_names_the_query_and_the_database_error(tmp_path, wine):
    with sqlite3.connect(tmp_path / "w.db") as con:
        wine.to_sql("wine", con, index=False)
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with pytest.raises(
        DataError, match=r"SQL query 'SELECT \* FROM wines' .* no such table: wines"
    ):
        open_table(url, {"query": "SELECT * FROM wines"}, None)
    with pytest.raises(DataError, match="returned no rows"):
        open_table(url, {"query": "SELECT * FROM wine WHERE target > 5"}, None)
    with pytest.raises(DataError, match="does not exist"):
        open_table(f"sqlite:///{tmp_path / 'other.db'}", {"table": "wine"}, None)
    with pytest.raises(ConfigError, match="query .* or table"):
        open_table(url, {}, None)


def test_options_come_from_hydra(tmp_path, wine):
    from omegaconf import OmegaConf

    wine.head(30).to_csv(tmp_path / "w.dat", index=False, header=False, sep="|")
    options = OmegaConf.create(
        {"names": list(wine.columns), "sep": "|", "header": False, "na_values": ["13.2"]}
    )
    sample = open_table(str(tmp_path / "w.dat"), options, None).sample(30)
    assert list(sample.columns) == list(wine.columns)
    assert sample["alcohol"].isna().sum() == (wine["alcohol"].head(30) == 13.2).sum() > 0
    with pytest.raises(ConfigError, match="unknown reader option"):
        open_table(str(tmp_path / "w.dat"), {"separator": ","}, None)
    forced = open_table(str(tmp_path / "w.dat"), {"format": "csv", "header": False}, None)
    assert forced.sample(1).shape == (1, 14)


def test_text_quirks_whitespace_bom_and_old_mac_line_ends(tmp_path):
    iris = load_iris(as_frame=True).frame.head(12)
    spaced = "".join(
        "  " + "   ".join(str(v) for v in row) + "\n" for row in iris.itertuples(index=False)
    )
    (tmp_path / "iris.data").write_text(spaced)
    table = open_table(str(tmp_path / "iris.data"), {"names": list(iris.columns)}, None)
    assert table.detected["sep"] == "\\s+"
    pd.testing.assert_frame_equal(table.sample(20).reset_index(drop=True), iris, check_dtype=False)

    text = iris.to_csv(index=False).replace("\n", "\r")
    (tmp_path / "mac.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = open_table(str(tmp_path / "mac.csv"), {}, None)
    assert table.detected["encoding"] == "utf-8-sig" and table.detected["header"] is True
    frame, _ = all_chunks(table, 5)
    assert list(frame.columns) == list(iris.columns)
    assert frame.index.tolist() == list(range(2, 14))


def test_unclosed_quote_is_a_bad_row(tmp_path):
    (tmp_path / "q.csv").write_text('a,b\n1,x\n2,"oops\n3,y\n4,z\n')
    with pytest.raises(DataError, match=r"line 3: a quoted field opened on this line is never"):
        all_chunks(open_table(str(tmp_path / "q.csv"), {}, None), 10)
    table = open_table(str(tmp_path / "q.csv"), {}, None, on_bad_rows="quarantine")
    frame, _ = all_chunks(table, 10)
    assert frame.index.tolist() == [2]
    assert table.bad_rows[0]["row"] == 3 and table.bad_rows[0]["raw"] == '2,"oops\n3,y\n4,z'


def test_fail_names_the_first_ragged_line_across_blocks(tmp_path, monkeypatch, wine):
    lines = wine.head(60).to_csv(index=False).splitlines(keepends=True)
    lines[5] = lines[5].rstrip("\n") + ",1\n"  # line 6, in a block without quotes
    lines[50] = '1,"2",3,4,5,6,7,8,9,10,11,12,13,14,15\n'  # line 51, in a quoted block
    (tmp_path / "w.csv").write_text("".join(lines))
    monkeypatch.setattr(base, "BLOCK_CHARS", 500)
    with pytest.raises(DataError, match="line 6: 15 fields"):
        all_chunks(open_table(str(tmp_path / "w.csv"), {}, None), 1000)
    table = open_table(str(tmp_path / "w.csv"), {}, None, on_bad_rows="skip")
    frame, _ = all_chunks(table, 1000)
    assert len(frame) == 58 and [b["row"] for b in table.bad_rows] == [6, 51]


def test_bad_libsvm_line(tmp_path, wine):
    path = tmp_path / "w.svm"
    dump_svmlight_file(wine.iloc[:5, :3].to_numpy(), wine["target"].head(5).to_numpy(), str(path))
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(3, "1 1:abc\n")  # line 4
    path.write_text("".join(lines))
    with pytest.raises(DataError, match="w.svm' line 4: not a LibSVM line"):
        open_table(str(path), {}, None)
    table = open_table(str(path), {}, None, on_bad_rows="quarantine")
    frame, _ = all_chunks(table, 10)
    assert frame.index.tolist() == [1, 2, 3, 5, 6] and table.bad_rows[0]["row"] == 4


@pytest.mark.parametrize(
    "fmt", ["csv", "tsv", "semicolon", "csv_gz", "excel", "parquet", "feather", "json_records"]
)
def test_predict_streams_every_format_ingest_reads(tmp_path, wine, fmt):
    """The formats registry gives predict and monitor a `stream` for ingest's formats."""
    FORMATS[fmt][0](wine, tmp_path)
    (path,) = list(tmp_path.iterdir())
    chunks = list(read_chunks(path, formats(), 50))
    assert [len(c) for c in chunks] == [50, 50, 50, 28]
    frame = pd.concat(chunks)
    assert frame.index.tolist() == list(range(178)) and list(frame.columns) == list(wine.columns)
    np.testing.assert_allclose(frame["alcohol"].to_numpy(float), wine["alcohol"].to_numpy())


def test_predict_streams_libsvm_and_names_a_format_without_stream(tmp_path, wine):
    path = tmp_path / "w.svm"
    dump_svmlight_file(wine.iloc[:, :3].to_numpy(), wine["target"].to_numpy(), str(path))
    frame = pd.concat(read_chunks(path, formats(), 100))
    assert list(frame.columns) == ["label", "f0", "f1", "f2"] and len(frame) == 178
    with sqlite3.connect(tmp_path / "w.db") as con:
        wine.to_sql("wine", con, index=False)
    with pytest.raises(ConfigError, match=r"sql format has no 'stream'.*formats\.sql\.stream"):
        next(read_chunks(tmp_path / "w.db", formats(), 100))


def test_format_option_takes_a_name_suffix_or_alias(tmp_path, wine):
    wine.to_feather(tmp_path / "w.bin")
    for name in ("feather", "arrow", "ipc"):
        table = open_table(str(tmp_path / "w.bin"), {"format": name})
        assert table.detected["format"] == "feather" and table.sample(3).shape == (3, 14)
    with pytest.raises(ConfigError, match=r"reader option format 'orc' unknown; known: .*feather"):
        open_table(str(tmp_path / "w.bin"), {"format": "orc"})
