"""`featctl backfill` as a user runs it: wrong ranges and groups are one-line errors with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import featctl_process


def _backfill(*args: str, data_dir: Path) -> str:
    result = featctl_process("backfill", *args, data_dir=data_dir, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    return " ".join(result.stdout.split())


@pytest.mark.parametrize(("args", "message"), [
    (("--start", "2026-01-10", "--end", "2026-01-08"),
     "error: --end 2026-01-08 is before --start 2026-01-10 (fix: give the first day first)"),
    (("--start", "2025-12-30", "--end", "2026-01-02"),
     "error: --start 2025-12-30 is before the first partition 2026-01-01 (fix: start later, or set "
     "FP_PARTITIONS_START earlier)"),
    (("--start", "2026-01-08", "--end", "2026-01-10", "--group", "nope"),
     "error: unknown feature group 'nope' (fix: use one of: post_popularity, subreddit_activity, user_activity, "
     "user_upvotes)"),
])
def test_backfill_errors_are_one_line_with_the_fix(args, message, tmp_path):
    assert message in _backfill(*args, data_dir=tmp_path)
