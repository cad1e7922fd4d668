"""The registry lock's notation: entries are keyed by `group@vN`, and locks written as `group@N` still read."""

from __future__ import annotations

from assets.registry import load_registry
from quality.lock import compare_with_lock, read_lock


def test_a_lock_in_the_old_notation_reads_as_the_same_refs(tmp_path):
    registry = load_registry()
    old = tmp_path / "registry.lock"
    current = (registry.root / "registry.lock").read_text()
    old.write_text(current.replace("@v1:", "@1:"))
    assert "user_upvotes@1:" in old.read_text()

    assert read_lock(old) == read_lock(registry.root / "registry.lock")
    comparison = compare_with_lock(registry, read_lock(old), old)
    assert (comparison.changed, comparison.new) == ((), ())
