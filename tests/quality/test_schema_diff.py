"""The schema diff: what changed between declared and actual columns, and a fingerprint of the change."""

from __future__ import annotations

from quality.schema_diff import ColumnSchema, diff_schemas

CONTRACT = [ColumnSchema("event_id", "string", False), ColumnSchema("user_id", "bigint", False),
            ColumnSchema("post_id", "bigint", False), ColumnSchema("title", "string", True)]


def test_identical_columns_have_no_diff():
    diff = diff_schemas(CONTRACT, [ColumnSchema(c.name, c.dtype) for c in CONTRACT])
    assert not diff
    assert diff.summary() == "no schema change"


def test_added_removed_retyped_and_nulls_in_non_nullable_columns():
    actual = [ColumnSchema("event_id", "string"), ColumnSchema("userid", "bigint"), ColumnSchema("post_id", "string"),
              ColumnSchema("title", "string")]
    diff = diff_schemas(CONTRACT, actual, null_counts={"event_id": 3, "title": 5})
    assert diff.lines() == ["removed user_id (bigint)", "added userid (bigint)", "retyped post_id: bigint -> string",
                            "nullability changed event_id: declared non-null, found 3 nulls"]


def test_nulls_in_a_nullable_column_are_no_change():
    assert not diff_schemas(CONTRACT, [ColumnSchema(c.name, c.dtype) for c in CONTRACT], null_counts={"title": 9})


def test_order_counts_only_when_asked():
    swapped = [ColumnSchema(c.name, c.dtype) for c in (CONTRACT[0], CONTRACT[2], CONTRACT[1], CONTRACT[3])]
    assert not diff_schemas(CONTRACT, swapped)
    assert diff_schemas(CONTRACT, swapped, ordered=True).reordered == ("user_id", "post_id")


def test_the_fingerprint_names_the_change_not_the_counts():
    actual = [ColumnSchema(c.name, c.dtype) for c in CONTRACT]
    few, many = diff_schemas(CONTRACT, actual, {"user_id": 1}), diff_schemas(CONTRACT, actual, {"user_id": 1000})
    other = diff_schemas(CONTRACT, actual, {"post_id": 1})
    assert few.fingerprint() == many.fingerprint() != other.fingerprint()
