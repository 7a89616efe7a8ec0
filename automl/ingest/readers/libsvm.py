"""LibSVM / svmlight text (``<label> <index>:<value> ...``), read whole into a dense frame;
a line that is not LibSVM is a bad row with its line number."""

from __future__ import annotations

import io
import re

import pandas as pd

from automl.errors import DataError
from automl.ingest.readers.base import PROBE_BYTES, FrameTable, Options, bad_row
from automl.ingest.readers.source import Source, check_text

_NUMBER = rb"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
SVM_LINE = re.compile(  # label(s) [qid:n] index:value ... [# comment]
    rb"^\s*%s(?:,%s)*(?:\s+qid:\d+)?(?:\s+\d+:%s)*\s*(?:#.*)?$" % ((_NUMBER,) * 3),
    re.IGNORECASE,
)


def read_libsvm(source: Source, opts: Options, on_bad_rows: str) -> FrameTable:
    """A LibSVM file, read whole: a label column then one dense column per feature
    (``names``: the features' names, or the label's name then them)."""
    from sklearn.datasets import load_svmlight_file

    head = source.head(PROBE_BYTES)
    if not head:
        raise DataError(f"'{source.name}' is empty")
    check_text(head, source.name, "LibSVM", "auto")
    data = source.read_all()
    lines = data.splitlines()
    numbers = [
        i for i, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith(b"#")
    ]
    bad_rows: list[dict] = []
    try:
        features, labels = load_svmlight_file(io.BytesIO(data))
    except ValueError as exc:
        bad = [i for i in numbers if not SVM_LINE.match(lines[i - 1])]
        if not bad:
            raise DataError(f"cannot read '{source.name}' as LibSVM: {exc}") from exc
        why = "not a LibSVM line ('<label> <index>:<value> ...')"
        bad_rows = [
            bad_row(source.name, on_bad_rows, i, lines[i - 1].decode("latin-1"), why) for i in bad
        ]
        drop = set(bad)
        numbers = [i for i in numbers if i not in drop]
        kept = b"\n".join(lines[i - 1] for i in numbers) + b"\n"
        try:
            features, labels = load_svmlight_file(io.BytesIO(kept))
        except ValueError as exc2:
            raise DataError(f"cannot read '{source.name}' as LibSVM: {exc2}") from exc2
    if features.shape[0] == 0:
        raise DataError(f"'{source.name}' has no data rows")
    width = features.shape[1]
    names = opts.names
    if names is None:
        label, feature_names = "label", [f"f{i}" for i in range(width)]
    elif len(names) == width + 1:
        label, feature_names = names[0], names[1:]
    elif len(names) == width:
        label, feature_names = "label", names
    else:
        raise DataError(
            f"'{source.name}' has {width} features: the names option must list {width} "
            f"feature names, or the label's name then them ({width + 1}), not {len(names)}"
        )
    frame = pd.DataFrame(features.toarray(), columns=feature_names)
    frame.insert(0, label, labels)
    index = numbers if len(numbers) == len(frame) else None
    table = FrameTable(source.name, on_bad_rows, "libsvm", frame, index, bad_rows)
    table.detected.update(label=label, features=width)
    return table
