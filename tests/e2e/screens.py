"""Screenshots a test takes at each step, numbered in order, as artifacts a person can look through."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

LOADING = re.compile(r"^Loading")
SETTLE_MS = 15_000


class Screens:
    """Numbered screenshots in one folder: 01-<step>.png, 02-<step>.png, ..."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0

    def take(self, page, step: str) -> Path:
        """Save the page once its "Loading…" placeholders are gone (or after SETTLE_MS); returns the file."""
        try:
            expect(page.get_by_text(LOADING)).to_have_count(0, timeout=SETTLE_MS)
        except AssertionError:
            pass  # a picture of a page still loading beats none
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return path

    def take_failure(self, page) -> Path | None:
        """The page as the failure left it; None when the browser itself is gone."""
        try:
            return self.take(page, "failure")
        except PlaywrightError as exc:
            print(f"no failure screenshot: {exc}")
            return None
