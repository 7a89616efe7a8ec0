"""The architecture holds: the layer contracts, and one implementation of each job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "automl"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE.parent)): p.read_text() for p in PACKAGE.rglob("*.py")}


def where(pattern: str) -> set[str]:
    """The modules of the package whose code matches ``pattern``."""
    return {name for name, text in sources().items() if re.search(pattern, text, re.M)}


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
def test_the_layer_contracts_hold():
    """pyproject.toml's contracts: entry points > apps > serving > services > core."""
    result = subprocess.run(
        [str(LINT_IMPORTS)], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_atomic_write_helper():
    """Temp files renamed into place: only automl/atomic.py renames or replaces."""
    assert where(r"os\.replace\(|os\.rename\(|shutil\.move\(") == {"automl/atomic.py"}
    assert where(r"mkstemp\(") == {"automl/atomic.py"}


def test_one_formats_registry():
    """File formats are chosen from the `formats` config group, nowhere else."""
    assert len(list((PACKAGE.parent / "conf").rglob("formats/*.yaml"))) == 1
    assert not where(r"^(SUFFIXES|FORMATS)\s*=")


def test_one_report_kit_one_verdict_one_search_loop():
    assert where(r"<style|html\.escape\(|savefig\(|dpi=") == {"automl/reports.py"}
    assert len(where(r"^def verdict\(")) == 1
    assert not where(r"\.optimize\(")  # the portfolio's ask/tell loop is the only one
    assert len(where(r"^def run_portfolio\(")) == 1


def test_apps_are_thin_and_nothing_imports_them():
    apps = {p.stem for p in (PACKAGE / "apps").glob("*.py")} - {"__init__"}
    assert {"train", "predict", "ingest", "monitor", "serve", "registry", "admin"} <= apps
    for name, text in sources().items():
        if name.startswith("automl/apps/"):
            continue
        imported = set(re.findall(r"^\s*from automl\.apps\.(\w+) import", text, re.M))
        assert not imported or text.count("\n") < 12, f"{name} imports an app: {imported}"
