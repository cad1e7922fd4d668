"""Screenshots a test takes at each step, numbered in order, as artifacts a person can look through."""

from __future__ import annotations

from pathlib import Path


class Screens:
    """Numbered full-page screenshots in one folder: 01-<step>.png, 02-<step>.png, ..."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def take(self, page, step: str) -> Path:
        """Save the page as it looks now; returns the file (named after the step)."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
