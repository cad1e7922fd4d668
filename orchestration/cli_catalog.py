"""featctl commands of the catalog: `featctl new` scaffolds a feature group folder from a template."""

from __future__ import annotations

import click

from assets.registry import load_registry
from assets.scaffold import NewGroup, check_new_name, scaffold_group
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
    steps = [
        f"edit {folder}/feature.yaml: the description and every line marked EDIT; one feature per output column",
        f"edit {folder}/batch.sql" + (" and stream/transform.sql" if stream else "")
        + ": the query; keep the entity key column and {{ ds }}",
        "featctl check: validates the folder (Spark analyses batch.sql"
        + (", Flink the stream SQL" if stream else "") + ")",
        "featctl check --update-lock: records the new group version in assets/registry.lock (commit it)",
        f"featctl materialize --group {group} --partition YYYY-MM-DD: try it on a day of the event log",
        "make test, then open a PR with the folder and the lock",
    ]
    console.print("next steps:")
    for number, step in enumerate(steps, 1):
        console.print(f"  {number}. {step}", highlight=False, markup=False)
