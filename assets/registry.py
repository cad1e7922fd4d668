"""Load and validate the registry folders into typed specs, with errors that name the file and the field.

Layout (adding a folder is the whole change):
    assets/entities.yaml                    entities and their key columns
    assets/sources/<source>.yaml            schema contract of a raw source
    assets/features/<group>/feature.yaml    metadata and features of a group (the folder name is its name)
    assets/features/<group>/batch.sql       HiveQL for one daily partition; `{{ ds }}` is the template var
    assets/features/<group>/udf.py          optional Python UDFs named in feature.yaml `udfs:`
    assets/features/<group>/on_demand.py    optional request-time functions named in feature.yaml `on_demand:`
    assets/services/<service>.yaml          a model's inputs by one name: feature refs and on-demand features
    assets/services/on_demand.py            the services' request-time functions
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from assets.aggregations import rendered_files
from assets.operations import OPERATIONS
from assets.specs import FEATURE_REF, Entity, FeatureGroup, FeatureServiceSpec, OnDemandFeature, Source, StreamQueries
from infra.errors import PlatformError

DEFAULT_ROOT = Path(__file__).resolve().parent
TEMPLATE_VAR = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
TEMPLATE_VARS = ("ds", "ds_nodash")
STREAM_TEMPLATE_VARS = ("connector",)
CONNECTOR_CLAUSE = re.compile(r"WITH\s*\(\s*\{\{\s*connector\s*\}\}\s*\)", re.IGNORECASE)
CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\s*\(", re.IGNORECASE | re.MULTILINE)


class RegistryError(PlatformError):
    """A registry file is invalid; the message starts with `<file>: <field>:`."""


@dataclass(frozen=True)
class Registry:
    """Every entity, source, feature group and feature service, validated against each other."""

    root: Path
    entities: dict[str, Entity]
    sources: dict[str, Source]
    groups: dict[str, FeatureGroup]
    services: dict[str, FeatureServiceSpec] = field(default_factory=dict)

    def group(self, name: str) -> FeatureGroup:
        """The group called `name`, or an error listing the known ones."""
        if name not in self.groups:
            raise PlatformError(f"unknown feature group {name!r}", f"use one of: {', '.join(sorted(self.groups))}")
        return self.groups[name]

    def entity_of(self, group: FeatureGroup) -> Entity:
        return self.entities[group.entity]


def relative_path(path: Path) -> str:
    """`path` relative to the working directory where it lies below it: how errors name a user's files."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fail(path: Path, field: str, message: str, fix: str = "edit the file and run `featctl check`") -> RegistryError:
    return RegistryError(f"{relative_path(path)}: {field}: {message}", fix)


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# libyaml's safe loader when PyYAML was built with it: 10x faster, which a catalog of 100 groups notices.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(parse)"
        raise _fail(path, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise _fail(path, "(top level)", "must be a mapping of keys to values")
    return data


def _validate(model, path: Path, data: dict, within: tuple = (), **extra):
    """Build `model` from `data`, turning the first validation error into `<file>: <field>: <message>`."""
    try:
        return model(**data, **extra)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        field, _, rest = message.partition(": ") if err["loc"] == () else ("", "", message)
        if field and " " not in field:  # a model-level check that names its own field
            return_loc, message = (field,), rest
        else:
            return_loc = tuple(err["loc"])
        raise _fail(path, _field_path(within + return_loc), message) from None


def check_template(path: Path, text: str, allowed: tuple[str, ...] = TEMPLATE_VARS) -> None:
    """Refuse template variables other than the documented ones, naming the line."""
    for lineno, line in enumerate(text.splitlines(), 1):
        for match in TEMPLATE_VAR.finditer(line):
            if match.group(1) not in allowed:
                raise _fail(path, f"line {lineno}", f"unknown template variable {{{{ {match.group(1)} }}}}",
                            f"use only {', '.join('{{ %s }}' % v for v in allowed)}")


def _load_stream(folder: Path, group_sources: dict, windowed_by_hand: bool) -> StreamQueries | None:
    """The group's stream/source.sql + transform.sql (+ features.sql for a hand-written windowed stream),
    or None when it has no stream folder."""
    stream = folder / "stream"
    if not stream.is_dir():
        return None
    texts = {}
    for name in ("source.sql", "transform.sql"):
        path = stream / name
        if not path.exists():
            raise _fail(path, "(file)", "missing", "a stream/ folder needs source.sql and transform.sql")
        texts[name] = path.read_text()
    features_path = stream / "features.sql"
    if features_path.exists() != windowed_by_hand:
        raise _fail(features_path, "(file)", "missing: a stream with aggregations: aggregates computes its "
                    "features from the view `windowed`" if windowed_by_hand else
                    "is read only by a hand-written windowed stream (feature.yaml aggregations: aggregates)",
                    "add it" if windowed_by_hand else "remove it, or declare the aggregates it reads")
    features_sql = features_path.read_text() if windowed_by_hand else None
    source_path = stream / "source.sql"
    check_template(source_path, texts["source.sql"], STREAM_TEMPLATE_VARS)
    check_template(stream / "transform.sql", texts["transform.sql"], ())
    if features_sql is not None:
        check_template(features_path, features_sql, ())
    starts = list(CREATE_TABLE.finditer(texts["source.sql"]))
    if not starts:
        raise _fail(source_path, "CREATE TABLE", "must create a table for each source the stream reads, found none")
    ddls = {}
    for match, end in zip(starts, [m.start() for m in starts[1:]] + [len(texts["source.sql"])]):
        table, chunk = match.group(1), texts["source.sql"][match.start():end]
        if table not in group_sources:
            raise _fail(source_path, "CREATE TABLE", f"table {table!r} is not one of the group's sources "
                        f"({', '.join(group_sources)})", "name the table after the source it reads")
        if table in ddls:
            raise _fail(source_path, "CREATE TABLE", f"table {table!r} is created twice")
        connector = CONNECTOR_CLAUSE.search(chunk)
        if connector is None:
            raise _fail(source_path, f"CREATE TABLE {table}", "must end with WITH ({{ connector }}) so the "
                        "profile fills the connector")
        ddls[table] = chunk[:connector.end()].strip()  # what follows (`;`, comments before the next table) is not its DDL
    return StreamQueries(source_sql=texts["source.sql"], transform_sql=texts["transform.sql"], source_ddls=ddls,
                         features_sql=features_sql)


def _load_entities(root: Path) -> dict[str, Entity]:
    path = root / "entities.yaml"
    data = _read_yaml(path)
    entities = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise _fail(path, name, "must be a mapping with key, dtype, description")
        entities[name] = _validate(Entity, path, {"name": name, **body}, within=(name,))
    return entities


def _load_sources(root: Path, entities: dict[str, Entity]) -> dict[str, Source]:
    """Every source contract under `root`/sources, by name."""
    return {p.stem: _load_source(p, entities) for p in sorted((root / "sources").glob("*.yaml"))}


def _check_entity(path: Path, group: FeatureGroup, entities: dict[str, Entity]) -> Entity:
    """The entity `group` describes, or an error naming the known ones."""
    if group.entity not in entities:
        raise _fail(path, "entity", f"unknown entity {group.entity!r} (known: {', '.join(sorted(entities))})")
    return entities[group.entity]


def _load_source(path: Path, entities: dict[str, Entity]) -> Source:
    data = _read_yaml(path)
    if "name" in data:
        raise _fail(path, "name", "is the file name; remove the key")
    source = _validate(Source, path, {"name": path.stem, **data}, file=path)
    for entity, column in source.entity_keys.items():
        if entity not in entities:
            raise _fail(path, f"entity_keys.{entity}", f"unknown entity (known: {', '.join(sorted(entities))})")
        if source.column(column).dtype != entities[entity].dtype:
            raise _fail(path, f"entity_keys.{entity}", f"column {column!r} is {source.column(column).dtype}, "
                        f"entity {entity!r} keys are {entities[entity].dtype}")
    return source


def _defined_functions(path: Path) -> set[str]:
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise _fail(path, f"line {exc.lineno}", f"Python syntax error: {exc.msg}") from None
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def _check_aggregations(path: Path, group: FeatureGroup, sources: dict[str, Source]) -> Source:
    """A declared group's aggregations read a source with the group's entity key and real columns of
    the dtypes its features declare; returns that source."""
    if group.aggregations.source not in sources:
        raise _fail(path, "aggregations.source", f"unknown source (known: {', '.join(sorted(sources))})")
    source = sources[group.aggregations.source]
    if group.entity not in source.entity_keys:
        raise _fail(path, "aggregations.source", f"{source.name} has no {group.entity} key (entity_keys: "
                    f"{', '.join(source.entity_keys) or 'none'})")
    columns = {c.name: c for c in source.columns}
    for index, feature in enumerate(group.features):
        column = columns.get(feature.aggregate.input) if feature.aggregate.input else None
        if feature.aggregate.input and column is None:
            raise _fail(path, f"features[{index}].aggregate.input", f"{feature.aggregate.input!r} is not a column "
                        f"of {source.name} ({', '.join(columns)})")
        operation = OPERATIONS[feature.aggregate.operation]
        refused = operation.refuses(column.dtype) if column else None
        if refused:
            raise _fail(path, f"features[{index}].aggregate", f"{refused}, {column.name} is {column.dtype}")
        wanted = operation.value_dtype(column.dtype if column else None)
        if feature.dtype != wanted:
            raise _fail(path, f"features[{index}].dtype", f"a {operation.name} of {column.name if column else 'events'} "
                        f"is {wanted}, not {feature.dtype}")
    return source


def _check_rendered(path: Path, group: FeatureGroup, sources: dict[str, Source], entity: Entity) -> None:
    """A declared group's batch.sql and stream/ are what feature.yaml renders (a hand edit, or a
    feature.yaml change without `featctl render`, is an error)."""
    source = _check_aggregations(path, group, sources)
    for relative, text in rendered_files(group, source, entity.key).items():
        file = group.folder / relative
        if not file.exists() or file.read_text() != text:
            raise _fail(file, "(file)", "missing" if not file.exists() else
                        "differs from what feature.yaml `aggregations:` renders (rendered files are not edited by hand)",
                        f"run `featctl render {group.name}` and commit the result")


def _load_group(folder: Path, entities: dict[str, Entity], sources: dict[str, Source]) -> FeatureGroup:
    path = folder / "feature.yaml"
    if not path.exists():
        raise _fail(folder, "feature.yaml", "missing", "every folder under assets/features needs a feature.yaml")
    data = _read_yaml(path)
    if "name" in data:
        raise _fail(path, "name", "is the folder name; remove the key")
    sql_path = folder / "batch.sql"
    if not sql_path.exists():
        raise _fail(sql_path, "(file)", "missing", f"run `featctl render {folder.name}`" if "aggregations" in data
                    else "add the HiveQL that computes one partition ({{ ds }})")
    sql = sql_path.read_text()
    check_template(sql_path, sql)
    if "freshness" not in data:
        raise _fail(path, "freshness", "missing: how old the group's online values may get before it counts as stale",
                    "add e.g. `freshness: 26h` for a daily group, `2m` for one a stream keeps fresh")
    group = _validate(FeatureGroup, path, {"name": folder.name, **data}, folder=folder, batch_sql=sql)
    for name in group.sources:
        if name not in sources:
            raise _fail(path, f"sources.{name}", f"unknown source (known: {', '.join(sorted(sources))})")
    windowed_by_hand = group.aggregations is not None and not group.aggregations.rendered
    group = group.model_copy(update={"stream": _load_stream(folder, group.sources, windowed_by_hand)})
    if windowed_by_hand and group.stream is None:
        raise _fail(path, "aggregations", "aggregates are computed by the group's stream, which has no stream/ "
                    "folder", "add stream/source.sql, transform.sql and features.sql")
    entity = _check_entity(path, group, entities)
    if any(f.name == entity.key for f in group.features):
        raise _fail(path, "features", f"{entity.key!r} is the entity key, not a feature")
    if group.aggregations is not None and group.aggregations.rendered:
        _check_rendered(path, group, sources, entity)
    defined = _defined_functions(group.udf_path) if group.udf_path.exists() else set()
    for index, udf in enumerate(group.udfs):
        if udf.name not in defined:
            raise _fail(path, f"udfs[{index}].name", f"{udf.name!r} is not a function in {group.udf_path.name}")
    return group


def _ref_target(groups: dict[str, FeatureGroup], ref: str) -> tuple[FeatureGroup, str | None]:
    """The group version and feature (None: the whole group) a ref names, or a ValueError saying why not."""
    match = FEATURE_REF.match(ref)
    if match is None:
        raise ValueError(f"{ref!r} is not a feature ref (group, group.feature, group@vN.feature)")
    group = groups.get(match["group"])
    if group is None:
        raise ValueError(f"{ref!r}: no feature group {match['group']!r} (groups: {', '.join(sorted(groups))})")
    if match["version"] is not None and int(match["version"]) != group.version:
        raise ValueError(f"{ref!r}: {group.name} v{int(match['version'])} is retired or unknown: the registry "
                         f"serves v{group.version}")
    names = [f.name for f in group.features] + [f.name for f in group.on_demand]
    if match["feature"] is not None and match["feature"] not in names:
        raise ValueError(f"{ref!r}: group {group.name!r} has no feature {match['feature']!r} "
                         f"(it has: {', '.join(names)})")
    return group, match["feature"]


def _check_on_demand(path: Path, module: Path, features: tuple[OnDemandFeature, ...], entity: str | None,
                     groups: dict[str, FeatureGroup], group: str | None = None) -> None:
    """Refuse on-demand features whose function is not in `module` or whose stored inputs do not exist, are
    on-demand themselves or describe another entity than `entity` (`group`: the folder's group, which bare
    feature names refer to)."""
    defined = _defined_functions(module) if module.exists() else set()
    for index, feature in enumerate(features):
        where = f"on_demand[{index}]"
        if feature.function not in defined:
            raise _fail(path, f"{where}.function", f"{feature.function!r} is not a function in {relative_path(module)}",
                        f"define `def {feature.function}({', '.join(feature.inputs)})` there, taking and "
                        "returning pandas Series")
        for argument, ref in feature.feature_inputs(group).items():
            try:
                source, name = _ref_target(groups, ref)
            except ValueError as exc:
                raise _fail(path, f"{where}.inputs.{argument}", str(exc)) from None
            if name in {f.name for f in source.on_demand}:
                raise _fail(path, f"{where}.inputs.{argument}", f"{ref!r} is itself on-demand",
                            "read the stored features it is computed from")
            if entity is not None and source.entity != entity:
                raise _fail(path, f"{where}.inputs.{argument}", f"{ref!r} describes {source.entity!r}, "
                            f"not {entity!r}", "read features of one entity")


def _load_service(path: Path, groups: dict[str, FeatureGroup]) -> FeatureServiceSpec:
    """One `services/<name>.yaml`: its refs must name served features of one entity."""
    data = _read_yaml(path)
    if "name" in data:
        raise _fail(path, "name", "is the file name; remove the key")
    service = _validate(FeatureServiceSpec, path, {"name": path.stem, **data}, file=path)
    if service.name in groups:
        raise _fail(path, "(file name)", f"{service.name!r} is also a feature group: `{service.name}.<feature>` "
                    "would name two things", "rename the service file")
    entity = None
    for index, ref in enumerate(service.features):
        try:
            group, _ = _ref_target(groups, ref)
        except ValueError as exc:
            raise _fail(path, f"features[{index}]", str(exc), "name a feature the registry serves") from None
        if entity is not None and group.entity != entity:
            raise _fail(path, f"features[{index}]", f"{ref!r} describes {group.entity!r}, the service's earlier "
                        f"features {entity!r}", "a service serves one entity: split it into two services")
        entity = entity or group.entity
    _check_on_demand(path, service.on_demand_path, service.on_demand, entity, groups)
    return service.model_copy(update={"entity": entity})


def load_registry(root: Path | None = None) -> Registry:
    """Load every entity, source, feature group and service under `root` (default: this package's folder)."""
    root = Path(root or DEFAULT_ROOT)
    entities = _load_entities(root)
    sources = _load_sources(root, entities)
    groups = {}
    for folder in sorted(p for p in (root / "features").iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        groups[folder.name] = _load_group(folder, entities, sources)
    udf_owner: dict[str, str] = {}
    for group in groups.values():
        for index, udf in enumerate(group.udfs):
            if udf.name in udf_owner:
                raise _fail(group.folder / "feature.yaml", f"udfs[{index}].name",
                            f"{udf.name!r} is already defined by group {udf_owner[udf.name]!r}", "rename the UDF")
            udf_owner[udf.name] = group.name
        _check_on_demand(group.folder / "feature.yaml", group.on_demand_path, group.on_demand, group.entity, groups,
                         group.name)
    services = {p.stem: _load_service(p, groups) for p in sorted((root / "services").glob("*.yaml"))}
    return Registry(root=root, entities=entities, sources=sources, groups=groups, services=services)


def render_declared(folder: Path, root: Path | None = None) -> list[Path]:
    """Write batch.sql and stream/ of the declared group in `folder` from its feature.yaml `aggregations:`
    (assets/aggregations.py), with the entities and sources of `root`; returns the files written. Works
    while those files are stale or missing."""
    root = Path(root or DEFAULT_ROOT)
    entities = _load_entities(root)
    sources = _load_sources(root, entities)
    name = folder.name
    path = folder / "feature.yaml"
    group = _validate(FeatureGroup, path, {"name": name, **_read_yaml(path)}, folder=folder, batch_sql="")
    if group.aggregations is None or not group.aggregations.rendered:
        raise _fail(path, "aggregations", f"{name} declares no aggregations: source: its SQL is written by hand")
    entity = _check_entity(path, group, entities)
    source = _check_aggregations(path, group, sources)
    written = []
    for relative, text in rendered_files(group, source, entity.key).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
        written.append(folder / relative)
    return written


def render_batch_sql(group: FeatureGroup, ds: str) -> str:
    """The group's batch query for partition `ds` (YYYY-MM-DD)."""
    values = {"ds": ds, "ds_nodash": ds.replace("-", "")}
    return TEMPLATE_VAR.sub(lambda m: values[m.group(1)], group.batch_sql)
