"""A Flink table's columns as Flink's own `DESCRIBE` states them: the one public way to read a declared
schema back (physical, computed and metadata columns, watermarks) without PyFlink's private Java handles.

The stream job uses it to rebuild source.sql's declared schema on top of the contract-checked lines;
`featctl check` uses it to compare source.sql and transform.sql with the contract and feature.yaml
(mapping type names to platform dtypes with assets.dtypes.DTYPE_OF_FLINK_TYPE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TIME_ATTRIBUTE_MARK = re.compile(r"\s*\*(ROWTIME|PROCTIME)\*")


@dataclass(frozen=True)
class FlinkColumn:
    """One column of a Flink table or view."""

    name: str
    type: str                 # Flink SQL type, e.g. BIGINT, TIMESTAMP(3), without a time-attribute mark
    extras: str | None        # `AS <expression>` of a computed column, `METADATA ...` of a metadata one
    watermark: str | None     # the watermark expression declared for this column

    @property
    def physical(self) -> bool:
        return not self.extras

    @property
    def expression(self) -> str | None:
        """The SQL expression of a computed column (None for other columns)."""
        return self.extras.removeprefix("AS ") if self.extras and self.extras.startswith("AS ") else None

    @property
    def type_name(self) -> str:
        """The type without length, precision or nullability: BIGINT, TIMESTAMP, VARCHAR."""
        return self.type.removesuffix(" NOT NULL").split("(")[0]


def describe(t_env, name: str) -> list[FlinkColumn]:
    """The columns of table or view `name` in `t_env`, in order."""
    with t_env.execute_sql(f"DESCRIBE `{name}`").collect() as rows:
        return [FlinkColumn(row[0], TIME_ATTRIBUTE_MARK.sub("", row[1]), row[4] or None, row[5] or None)
                for row in rows]
