"""The registry lock (`assets/registry.lock`): the output schema each published group version stands for.

A group version's online fields and offline table are read by models; once published, `user_upvotes@v1`
must keep meaning the same columns with the same types in the same order. `featctl check` compares each
group's declared output (entity key, features, dtypes) with the lock:
  - same schema: fine;
  - a version not in the lock yet: an error (a PR adding a group or a version records its schema with
    `featctl check --update-lock`, so CI never passes a schema nobody locked);
  - a locked version whose schema changed: an error with the diff; bump `version:` (the old version's
    fields and table stay for the models that read them) or, if nothing reads it yet, `--update-lock`.
Versions no longer in the registry stay in the lock, so a retired version number is never reused for
another schema. Expectations (ranges, nullability) are not part of the schema and never need a bump.
Entries are keyed by the group's ref (`user_upvotes@v1`); keys of locks written before that notation
(`user_upvotes@1`) are read as the same ref.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from assets.registry import Registry, RegistryError, relative_path
from assets.specs import FeatureGroup
from quality.schema_diff import ColumnSchema, SchemaDiff, diff_schemas

LOCK_HEADER = """\
# Registered output schemas of feature group versions: written by `featctl check --update-lock`, read by
# `featctl check` in CI. A locked version's schema may not change; bump the group's version instead.
"""
OLD_REF = re.compile(r"^(?P<group>[a-z][a-z0-9_]*)@(?P<version>[0-9]+)$")  # `user_upvotes@1`, before `@v1`


@dataclass(frozen=True)
class LockedSchema:
    """One group version's output: entity, key column and dtype, features and dtypes in order."""

    entity: str
    key: tuple[str, str]
    features: tuple[tuple[str, str], ...]

    def columns(self) -> list[ColumnSchema]:
        return [ColumnSchema(*self.key), *(ColumnSchema(name, dtype) for name, dtype in self.features)]

    def as_yaml(self) -> dict:
        return {"entity": self.entity, "key": {self.key[0]: self.key[1]}, "features": dict(self.features)}


@dataclass(frozen=True)
class LockChange:
    """A locked group version whose declared schema differs from the lock."""

    group: FeatureGroup
    diff: SchemaDiff
    entity_was: str

    def error(self) -> RegistryError:
        """The CI message: which file, what changed, what to do."""
        entity = f"entity {self.entity_was} -> {self.group.entity}; " if self.entity_was != self.group.entity else ""
        return RegistryError(
            f"{relative_path(self.group.folder / 'feature.yaml')}: version: the output schema of {self.group.ref} "
            f"changed without a version bump: {entity}{self.diff.summary()}",
            f"bump `version:` to {self.group.version + 1} (models reading v{self.group.version} keep their fields "
            f"and table), or if nothing reads v{self.group.version} yet run `featctl check --update-lock`")


@dataclass(frozen=True)
class UnlockedVersion:
    """A group version of the registry that the lock does not record yet."""

    group: FeatureGroup
    lock_path: Path

    def error(self) -> RegistryError:
        """The CI message: the folder whose version is missing from the lock, and the command that records it."""
        return RegistryError(
            f"{relative_path(self.group.folder / 'feature.yaml')}: version: {self.group.ref} is not in "
            f"{relative_path(self.lock_path)}, so its output schema is not protected against changes",
            "featctl check --update-lock")


@dataclass(frozen=True)
class LockComparison:
    """The registry against the lock: changed versions and versions not locked yet (both errors in CI)."""

    changed: tuple[LockChange, ...]
    new: tuple[UnlockedVersion, ...]

    def errors(self) -> list[RegistryError]:
        """One error per changed or unlocked group version."""
        return [*(change.error() for change in self.changed), *(version.error() for version in self.new)]


def declared_schema(registry: Registry, group: FeatureGroup) -> LockedSchema:
    """What the group version outputs, as feature.yaml declares it (and `featctl check` verifies on Spark)."""
    entity = registry.entity_of(group)
    return LockedSchema(entity=entity.name, key=(entity.key, entity.dtype),
                        features=tuple((f.name, f.dtype) for f in group.features))


def _current_ref(stored: str) -> str:
    """A lock key in the current notation: `user_upvotes@1` (older locks) reads as `user_upvotes@v1`."""
    match = OLD_REF.match(stored)
    return f"{match['group']}@v{match['version']}" if match else stored


def read_lock(path: Path) -> dict[str, LockedSchema]:
    """The locked schemas by group ref (`name@vN`); empty when there is no lock file yet."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return {_current_ref(ref): LockedSchema(entity=body["entity"], key=next(iter(body["key"].items())),
                                                features=tuple(body["features"].items()))
                for ref, body in data.items()}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, StopIteration) as exc:
        raise RegistryError(f"{relative_path(path)}: (file): not a registry lock ({exc})",
                            "restore it from git, or rebuild it with `featctl check --update-lock`") from None


def compare_with_lock(registry: Registry, locked: dict[str, LockedSchema], lock_path: Path) -> LockComparison:
    """Each group version of the registry against its locked schema (`lock_path` is where the lock lives)."""
    changed, new = [], []
    for group in registry.groups.values():
        if group.ref not in locked:
            new.append(UnlockedVersion(group, lock_path))
            continue
        was, now = locked[group.ref], declared_schema(registry, group)
        diff = diff_schemas(was.columns(), now.columns(), ordered=True)
        if diff or was.entity != now.entity:
            changed.append(LockChange(group, diff, was.entity))
    return LockComparison(tuple(changed), tuple(new))


def write_lock(path: Path, registry: Registry, locked: dict[str, LockedSchema]) -> None:
    """Record every current group version's schema, keeping the entries of versions no longer present."""
    merged = {**locked, **{g.ref: declared_schema(registry, g) for g in registry.groups.values()}}
    body = {ref: merged[ref].as_yaml() for ref in sorted(merged)}
    path.write_text(LOCK_HEADER + yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
