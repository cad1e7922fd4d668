"""Feature refs as users write them, resolved against the registry: the one grammar of serving and training sets.

A ref is `group` (every feature of the group), `group.feature`, or either with a version: `group@vN`,
`group@vN.feature`. A ref without a version means the version the registry serves; one with a version is
answered under its own name, so a model pinned to `user_upvotes@v1.upvotes_7d` reads back exactly the keys
it asked for. The registry holds one version per group folder, so any other version is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assets.registry import Registry
from assets.specs import FEATURE_REF, Feature, FeatureGroup
from infra.errors import PlatformError

REF = FEATURE_REF


class InvalidRequest(PlatformError):
    """A request that cannot be answered as written (malformed ref, bad ids, wrong entity): a 4xx, not a bug."""


class UnknownName(InvalidRequest):
    """A request naming an entity, group, version or feature the registry does not have."""


def shown(value, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: error messages echo what was sent, not all of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(frozen=True)
class ResolvedRef:
    """One feature a ref expands to: its output name, its group version and its declared feature."""

    name: str
    group: FeatureGroup
    feature: Feature


def _group_version(registry: Registry, name: str, version: str | None, ref: str) -> FeatureGroup:
    if name not in registry.groups:
        where = "" if ref == name else f" in {ref!r}"
        raise UnknownName(f"unknown feature group {name!r}{where}",
                          f"use one of: {', '.join(sorted(registry.groups))}")
    group = registry.groups[name]
    if version is not None and int(version) != group.version:
        raise UnknownName(f"{ref!r}: group {name!r} has no version {int(version)} in the registry "
                          f"(it serves v{group.version})", f"request {name}@v{group.version} or omit the version")
    return group


def resolve_refs(registry: Registry, refs: Sequence[str]) -> list[ResolvedRef]:
    """Expand refs into features, in request order and without duplicates; errors name the ref and the fix."""
    if not refs:
        raise InvalidRequest("no features requested", "name features as group.feature, group or group@vN")
    resolved: dict[str, ResolvedRef] = {}
    for ref in refs:
        match = REF.match(ref) if isinstance(ref, str) else None
        if match is None:
            raise InvalidRequest(f"{shown(ref)} is not a feature ref",
                                 "write group, group.feature, group@vN or group@vN.feature (lowercase names)")
        group = _group_version(registry, match["group"], match["version"], ref)
        stem = f"{group.name}@v{group.version}" if match["version"] else group.name
        names = [f.name for f in group.features]
        if match["feature"] and match["feature"] not in names:
            raise UnknownName(f"unknown feature {ref!r}", f"group {group.name!r} has: {', '.join(names)}")
        for feature in [group.feature(match["feature"])] if match["feature"] else group.features:
            name = f"{stem}.{feature.name}"
            resolved.setdefault(name, ResolvedRef(name=name, group=group, feature=feature))
    return list(resolved.values())
