"""The columns a partition must have, from what is declared: a source contract or a group's feature.yaml.

Types are Spark SQL type names (`bigint`, `string`, ...), the vocabulary a partition's files are read in,
so a declared schema and a read one compare directly.
"""

from __future__ import annotations

from assets.dtypes import SPARK_TYPES
from assets.offline_layout import feature_table_columns
from assets.registry import Registry
from assets.specs import FeatureGroup, Source
from quality.contracts import required_columns
from quality.schema_diff import ColumnSchema


def source_columns(source: Source) -> list[ColumnSchema]:
    """A raw partition's columns: the contract's, with entity keys and the event time never null."""
    required = required_columns(source)
    return [ColumnSchema(c.name, SPARK_TYPES[c.dtype], c.name not in required) for c in source.columns]


def feature_columns(registry: Registry, group: FeatureGroup) -> list[ColumnSchema]:
    """A feature partition's columns in table order: entity key (never null), features, event time."""
    columns = feature_table_columns(registry, group)
    key, *features, (event_time, event_dtype) = columns
    return [ColumnSchema(key[0], SPARK_TYPES[key[1]], False),
            *(ColumnSchema(name, SPARK_TYPES[dtype], group.feature(name).nullable) for name, dtype in features),
            ColumnSchema(event_time, SPARK_TYPES[event_dtype], False)]


def spark_columns(schema) -> list[ColumnSchema]:
    """The columns of a Spark StructType, as read (nullability is judged from data, not from flags)."""
    return [ColumnSchema(f.name, f.dataType.simpleString()) for f in schema.fields]
