"""featctl commands of the catalog: `featctl new` scaffolds a feature group folder from a template, `featctl
render` writes the SQL of a declared (windowed) group from its feature.yaml."""

from __future__ import annotations

import click

from assets.registry import load_registry, render_declared
from assets.scaffold import NewGroup, check_new_name, scaffold_group
from infra.errors import PlatformError
from infra.settings import load_settings
from orchestration.cli import cli, console


@cli.command()
@click.argument("group")
@click.option("--entity", required=True, help="What the features describe (an entity of assets/entities.yaml).")
@click.option("--source", required=True, help="The raw source the query reads (assets/sources/<source>.yaml).")
@click.option("--owner", default=None, help="team:<name> or an email (default: the source's owner).")
@click.option("--stream", is_flag=True, help="Also a Flink job (stream/*.sql) keeping the values fresh.")
def new(group: str, entity: str, source: str, owner: str | None, stream: bool) -> None:
    """Create assets/features/GROUP/ from a template: a working starter query to edit, then `featctl check`."""
    settings = load_settings()
    check_new_name(settings.registry_dir, group)
    registry = load_registry(settings.registry_dir)
    folder = scaffold_group(registry, NewGroup(group, entity, source, owner, stream))
    created = load_registry(settings.registry_dir).groups[group]  # the new folder loads with the rest
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    console.print(f"[green]created[/] {folder}: {', '.join(files)}")
    console.print(f"  {created.ref}: entity {created.entity}, owner {created.owner}, source {source}, "
                  f"features {', '.join(f.name for f in created.features)}")
    edit_queries = (f"featctl render {group}: writes batch.sql and stream/ from feature.yaml's aggregations "
                    "(again after every change to them)" if stream else
                    f"edit {folder}/batch.sql: the query; keep the entity key column and {{{{ ds }}}}")
    steps = [
        f"edit {folder}/feature.yaml: the description and every line marked EDIT; one feature per "
        + ("declared aggregate" if stream else "output column"),
        edit_queries,
        "featctl check: validates the folder (Spark analyses batch.sql"
        + (", Flink the stream SQL" if stream else "") + ")",
        "featctl check --update-lock: records the new group version in assets/registry.lock (commit it)",
        f"featctl materialize --group {group} --partition YYYY-MM-DD: try it on a day of the event log",
        "make test, then open a PR with the folder and the lock",
    ]
    console.print("next steps:")
    for number, step in enumerate(steps, 1):
        console.print(f"  {number}. {step}", highlight=False, markup=False)


@cli.command()
@click.argument("group")
def render(group: str) -> None:
    """Write GROUP's batch.sql and stream/ from its feature.yaml `aggregations:` (declared windowed features)."""
    settings = load_settings()
    folder = settings.registry_dir / "features" / group
    if not (folder / "feature.yaml").exists():
        raise PlatformError(f"no feature group folder {folder}", "featctl list shows the groups")
    for path in render_declared(folder, settings.registry_dir):
        console.print(f"[green]rendered[/] {path}")
    load_registry(settings.registry_dir)  # the folder now loads with the rest
