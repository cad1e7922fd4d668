"""Scaffold a new feature group folder from a template (`featctl new`), so a newcomer starts from a working one.

The templates are real folders under assets/templates/ (`batch_group/`, `stream_group/`) whose files
hold `{{ placeholders }}`; the registry's own template variables (`{{ ds }}`, `{{ connector }}`) are left
for run time. The generated folder loads in the registry and its starter query passes `featctl check`
as generated: it counts the source's events per entity key (the column the source contract names for
the entity in `entity_keys`). A stream group is declared (feature.yaml `aggregations:`): its batch.sql
and stream/ are rendered from it (assets/aggregations.py), not copied.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assets.registry import TEMPLATE_VAR, Registry, render_declared
from assets.specs import NAME, OWNER, Source
from infra.errors import PlatformError

TEMPLATES = Path(__file__).resolve().parent / "templates"
RUNTIME_VARS = ("ds", "ds_nodash", "connector")  # filled when the query runs, not when the folder is made


@dataclass(frozen=True)
class NewGroup:
    """What `featctl new` was asked for: the group's name, its entity and source, owner, and whether it streams."""

    name: str
    entity: str
    source: str
    owner: str | None = None
    stream: bool = False


def _known(names) -> str:
    return ", ".join(sorted(names)) or "none"


def check_new_name(root: Path, name: str) -> None:
    """Refuse a group name that is not snake_case or whose folder exists under `root`/features (any content).

    Checked before the registry is loaded too, so a half-made folder is reported as taken, not as broken.
    """
    if not re.match(NAME, name):
        raise PlatformError(f"group name {name!r} is not snake_case",
                            "use lowercase letters, digits and _, starting with a letter, e.g. user_comments")
    folder = root / "features" / name
    if folder.exists():
        raise PlatformError(f"{folder} already exists; featctl new never overwrites a folder",
                            "pick another name, or edit that folder")


def validate_request(registry: Registry, request: NewGroup) -> Source:
    """The source the new group reads, after checking every part of the request against the registry.

    Raises a PlatformError naming what is wrong and the known alternatives.
    """
    check_new_name(registry.root, request.name)
    if request.entity not in registry.entities:
        raise PlatformError(f"unknown entity {request.entity!r}", f"use one of: {_known(registry.entities)}")
    if request.source not in registry.sources:
        raise PlatformError(f"unknown source {request.source!r}", f"use one of: {_known(registry.sources)}")
    source = registry.sources[request.source]
    if request.entity not in source.entity_keys:
        keyed = [name for name, s in registry.sources.items() if request.entity in s.entity_keys]
        raise PlatformError(
            f"source {source.name!r} has no column for entity {request.entity!r} (no entity_keys.{request.entity} "
            f"in {source.file.name})",
            f"with {source.name} use an entity of: {_known(source.entity_keys)}; for {request.entity} use a source "
            f"of: {_known(keyed)}")
    if request.owner is not None and not re.match(OWNER, request.owner):
        raise PlatformError(f"owner {request.owner!r} is neither team:<name> nor an email address",
                            "pass --owner team:ranking or --owner someone@example.com")
    if request.stream and source.stream is None:
        raise PlatformError(f"source {source.name!r} has no stream: section, so --stream has nothing to read",
                            "drop --stream, or declare the source's stream in its contract first")
    return source


def template_values(registry: Registry, request: NewGroup, source: Source) -> dict[str, str]:
    """The value of every placeholder of the templates for this request."""
    key = registry.entities[request.entity].key
    column = source.entity_keys[request.entity]
    owner = request.owner or source.owner
    return {
        "group": request.name,
        "entity": request.entity,
        "entity_key": key,
        "key_column": column,
        "key_select": column if column == key else f"{column} AS {key}",
        "source": source.name,
        "source_table": source.table,
        "event_time": source.event_time,
        "owner": owner,
        "team": owner.removeprefix("team:").split("@")[0],
    }


def render_template(text: str, values: dict[str, str]) -> str:
    """`text` with its placeholders filled; run-time variables stay; an unknown placeholder is a bug in a template."""
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name in RUNTIME_VARS:
            return match.group(0)
        if name not in values:
            raise PlatformError(f"template placeholder {{{{ {name} }}}} has no value",
                                f"use one of {', '.join(sorted(values))} in assets/templates/")
        return values[name]

    return TEMPLATE_VAR.sub(fill, text)


def scaffold_group(registry: Registry, request: NewGroup) -> Path:
    """Create `<registry root>/features/<name>/` from the template; returns the folder.

    The folder is written under a hidden temporary name and renamed into place, so a failure leaves
    nothing half-written, and an existing folder is never touched.
    """
    source = validate_request(registry, request)
    values = template_values(registry, request, source)
    template = TEMPLATES / ("stream_group" if request.stream else "batch_group")
    features = registry.root / "features"
    target = features / request.name
    with tempfile.TemporaryDirectory(prefix=f".new-{request.name}-", dir=features) as scratch:
        staged = Path(scratch) / request.name
        for path in sorted(template.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out = staged / path.relative_to(template)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(render_template(path.read_text(), values))
        if request.stream:  # a declared windowed group: its batch.sql and stream/ are rendered from feature.yaml
            render_declared(staged, registry.root)
        if target.exists():
            raise PlatformError(f"{target} appeared while it was being generated; featctl new never overwrites",
                                "pick another name")
        staged.rename(target)  # fails rather than replace a folder created meanwhile
    return target
