"""The one Redis key/field layout, used by every writer (batch publish, stream sink) and every reader.

One hash per entity instance, `<prefix>:<entity>:<id>`, so all of an entity's features live in one key
and therefore one Redis Cluster slot. Fields are namespaced by group and version so versions coexist:
`<group>:v<version>:<feature>`; each group version has one event-time field `<group>:v<version>:_ts`
(integer microseconds since the epoch, UTC) shared by its features, which are always written together.
"""

from __future__ import annotations

import binascii
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS

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


def slot_history_key(prefix: str, group: str, version: int, slot: int | None) -> str:
    """The history stream that rows of entity keys in cluster `slot` append to (None: one Redis, one stream):
    on a cluster each slot has its own, so a script call's keys never cross slots."""
    key = history_key(prefix, group, version)
    return key if slot is None else f"{key}:{{{slot_tag(slot)}}}"


def slot_history_keys_pattern(prefix: str, group: str, version: int) -> str:
    """The SCAN MATCH pattern of a group version's per-slot history streams on a cluster."""
    return glob_escaped(history_key(prefix, group, version)) + ":{*}"


@cache
def _slot_tags() -> dict[int, str]:
    tags: dict[int, str] = {}
    number = 0
    while len(tags) < REDIS_CLUSTER_HASH_SLOTS:  # about 110k tries, 60 ms
        tag = str(number)
        tags.setdefault(binascii.crc_hqx(tag.encode(), 0) % REDIS_CLUSTER_HASH_SLOTS, tag)
        number += 1
    return tags


def slot_tag(slot: int) -> str:
    """The shortest decimal hash tag of cluster `slot`: a key containing `{tag}` lives in that slot."""
    return _slot_tags()[slot]


def glob_escaped(text: str) -> str:
    """`text` as a literal in a SCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
