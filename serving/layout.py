"""The one Redis key/field layout, used by every writer (batch publish, stream sink) and every reader.

One hash per entity instance, `<prefix>:<entity>:<id>`, so all of an entity's features live in one key
and therefore one Redis Cluster slot. Fields are namespaced by group and version so versions coexist:
`<group>:v<version>:<feature>`; each group version has one event-time field `<group>:v<version>:_ts`
(integer microseconds since the epoch, UTC) shared by its features, which are always written together.
"""

from __future__ import annotations

EVENT_TIME = "_ts"


def entity_key(prefix: str, entity: str, entity_id) -> str:
    """The Redis key of one entity instance."""
    return f"{prefix}:{entity}:{entity_id}"


def field_prefix(group: str, version: int) -> str:
    """What every hash field of one group version starts with (`<prefix>*` matches them all)."""
    return f"{group}:v{version}:"


def feature_field(group: str, version: int, feature: str) -> str:
    """The hash field holding one feature of one group version."""
    return f"{field_prefix(group, version)}{feature}"


def event_time_field(group: str, version: int) -> str:
    """The hash field holding the event time of a group version's values."""
    return f"{field_prefix(group, version)}{EVENT_TIME}"


def progress_key(prefix: str, group: str, version: int) -> str:
    """The hash where a group version's streaming injector records its progress."""
    return f"{prefix}:_stream:{group}:v{version}"


def history_key(prefix: str, group: str, version: int) -> str:
    """The Redis stream where the stream injection appends each row it lands, until it is loaded offline."""
    return f"{prefix}:_history:{group}:v{version}"


def glob_escaped(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
