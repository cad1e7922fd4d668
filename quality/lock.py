"""The registry lock (`assets/registry.lock`): the output schema each published group version stands for.

A group version's online fields and offline table are read by models; once published, `user_upvotes@1`
must keep meaning the same columns with the same types in the same order. `featctl check` compares each
group's declared output (entity key, features, dtypes) with the lock:
  - same schema: fine;
  - a version not in the lock yet: fine, reported as new (record it with `featctl check --update-lock`);
  - a locked version whose schema changed: an error with the diff; bump `version:` (the old version's
    fields and table stay for the models that read them) or, if nothing reads it yet, `--update-lock`.
Versions no longer in the registry stay in the lock, so a retired version number is never reused for
another schema. Expectations (ranges, nullability) are not part of the schema and never need a bump.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from assets.registry import Registry, RegistryError, _relative
from assets.specs import FeatureGroup
from quality.schema_diff import ColumnSchema, SchemaDiff, diff_schemas

LOCK_HEADER = """\
# Registered output schemas of feature group versions: written by `featctl check --update-lock`, read by
# `featctl check` in CI. A locked version's schema may not change; bump the group's version instead.
"""


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
            f"{_relative(self.group.folder / 'feature.yaml')}: version: the output schema of {self.group.ref} "
            f"changed without a version bump: {entity}{self.diff.summary()}",
            f"bump `version:` to {self.group.version + 1} (models reading v{self.group.version} keep their fields "
            f"and table), or if nothing reads v{self.group.version} yet run `featctl check --update-lock`")


@dataclass(frozen=True)
class LockComparison:
    """The registry against the lock: changed versions (errors) and versions not locked yet."""

    changed: tuple[LockChange, ...]
    new: tuple[str, ...]


def declared_schema(registry: Registry, group: FeatureGroup) -> LockedSchema:
    """What the group version outputs, as feature.yaml declares it (and `featctl check` verifies on Spark)."""
    entity = registry.entity_of(group)
    return LockedSchema(entity=entity.name, key=(entity.key, entity.dtype),
                        features=tuple((f.name, f.dtype) for f in group.features))


def read_lock(path: Path) -> dict[str, LockedSchema]:
    """The locked schemas by group ref (`name@version`); empty when there is no lock file yet."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return {ref: LockedSchema(entity=body["entity"], key=next(iter(body["key"].items())),
                                  features=tuple(body["features"].items())) for ref, body in data.items()}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, StopIteration) as exc:
        raise RegistryError(f"{_relative(path)}: (file): not a registry lock ({exc})",
                            "restore it from git, or rebuild it with `featctl check --update-lock`") from None


def compare_with_lock(registry: Registry, locked: dict[str, LockedSchema]) -> LockComparison:
    """Each group version of the registry against its locked schema."""
    changed, new = [], []
    for group in registry.groups.values():
        if group.ref not in locked:
            new.append(group.ref)
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
