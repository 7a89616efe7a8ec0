"""Training runs, read from the run folders training writes (being written)."""

from __future__ import annotations

from pathlib import Path


class RunIndex:
    """The runs under some folders."""

    def __init__(self, folders: list[Path], refresh_seconds: float = 5.0) -> None:
        self.folders = folders
        self.refresh_seconds = refresh_seconds
