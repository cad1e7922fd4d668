"""Schema diff: how the columns actually read differ from the declared ones.

Used for three comparisons: a raw partition's files against its source contract, a feature partition
against its feature.yaml, and a group's declared output against the committed registry lock. A diff
names added, removed and retyped columns, columns declared non-null that now hold nulls, and (when
order matters) columns that moved. Its fingerprint identifies the change itself, not where or when it
was seen, so one change raises one alert however many partitions and runs show it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ColumnSchema:
    """One column: name, type (in the vocabulary of the comparison) and whether it may hold nulls."""

    name: str
    dtype: str
    nullable: bool = True


@dataclass(frozen=True)
class Retyped:
    """A column present on both sides with another type."""

    column: str
    expected: str
    actual: str


@dataclass(frozen=True)
class NullsInNonNullable:
    """A column declared non-null that holds nulls; `null_count` is what was seen (not part of the change)."""

    column: str
    null_count: int | None = None


@dataclass(frozen=True)
class SchemaDiff:
    """Differences between an expected and an actual column list; empty when they agree."""

    added: tuple[ColumnSchema, ...] = ()
    removed: tuple[ColumnSchema, ...] = ()
    retyped: tuple[Retyped, ...] = ()
    nullability_changed: tuple[NullsInNonNullable, ...] = ()
    reordered: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.retyped or self.nullability_changed or self.reordered)

    def as_dict(self) -> dict:
        """Plain JSON-ready form, for check metadata and alert payloads."""
        return asdict(self)

    def fingerprint(self) -> str:
        """A stable id of the change itself: columns and types, not null counts or partitions."""
        change = {
            "added": sorted((c.name, c.dtype) for c in self.added),
            "removed": sorted((c.name, c.dtype) for c in self.removed),
            "retyped": sorted((r.column, r.expected, r.actual) for r in self.retyped),
            "nullability_changed": sorted(n.column for n in self.nullability_changed),
            "reordered": list(self.reordered),
        }
        return hashlib.sha256(json.dumps(change, sort_keys=True).encode()).hexdigest()[:16]

    def lines(self) -> list[str]:
        """One human-readable line per change, e.g. `retyped post_id: bigint -> string`."""
        out = [f"removed {c.name} ({c.dtype})" for c in self.removed]
        out += [f"added {c.name} ({c.dtype})" for c in self.added]
        out += [f"retyped {r.column}: {r.expected} -> {r.actual}" for r in self.retyped]
        out += [f"nullability changed {n.column}: declared non-null, found "
                f"{'nulls' if n.null_count is None else f'{n.null_count:,} nulls'}" for n in self.nullability_changed]
        if self.reordered:
            out.append(f"reordered: {', '.join(self.reordered)} moved")
        return out

    def summary(self) -> str:
        """All changes on one line; `no schema change` when empty."""
        return "; ".join(self.lines()) or "no schema change"


def diff_schemas(expected: Sequence[ColumnSchema], actual: Sequence[ColumnSchema],
                 null_counts: dict[str, int] | None = None, ordered: bool = False) -> SchemaDiff:
    """Compare `actual` columns with `expected` ones.

    Nullability is judged from data, not from a file's flags: a column declared non-null changed if
    `null_counts` (observed nulls per column) says it holds nulls. With `ordered`, columns present on
    both sides that are not in the expected relative order are reported as moved (order matters where
    rows are written by position, as in INSERT ... SELECT into an existing table).
    """
    expected_by_name = {c.name: c for c in expected}
    actual_by_name = {c.name: c for c in actual}
    common = [c.name for c in expected if c.name in actual_by_name]
    retyped = tuple(Retyped(name, expected_by_name[name].dtype, actual_by_name[name].dtype)
                    for name in common if expected_by_name[name].dtype != actual_by_name[name].dtype)
    nulls = null_counts or {}
    nullability = tuple(NullsInNonNullable(name, nulls[name]) for name in common
                        if not expected_by_name[name].nullable and nulls.get(name, 0) > 0)
    moved: tuple[str, ...] = ()
    if ordered:
        actual_order = [c.name for c in actual if c.name in expected_by_name]
        moved = tuple(name for name, other in zip(common, actual_order) if name != other)
    return SchemaDiff(
        added=tuple(c for c in actual if c.name not in expected_by_name),
        removed=tuple(c for c in expected if c.name not in actual_by_name),
        retyped=retyped,
        nullability_changed=nullability,
        reordered=moved,
    )
