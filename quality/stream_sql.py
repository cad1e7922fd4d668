"""PR-time validation of a group's stream/source.sql and stream/transform.sql with Flink's own planner.

Flink SQL is not Spark SQL (WATERMARK, TIMESTAMP(3), window TVFs), so it is parsed and validated by
Flink itself: a TableEnvironment registers source.sql (its `{{ connector }}` filled with a datagen
placeholder; nothing runs) and plans transform.sql with the group's UDFs. Checked:
  source.sql     each table (one per source read) parses; each physical column is a column of the
                 source contract with the same type, and it declares no metadata columns (the platform
                 reads the raw lines itself);
  transform.sql  parses and validates against those tables; outputs exactly the entity key, the declared
                 features and `feature_ts`, with their declared types (for a windowed group: the key and
                 the columns its window operator reads, `event_time` first);
  features.sql   (hand-written windowed groups) over the view `windowed` of the aggregates, typed from
                 transform.sql's columns: outputs exactly the key, the features and `feature_ts`.
A Flink JVM costs about 3 s and 200 MB, so all groups are validated in one short-lived subprocess
(`python -m quality.stream_sql <registry dir>`, one JSON problem per line on stdout), which keeps the
JVM out of the caller's process (featctl, or a test session that already runs Spark).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from assets.aggregations import EVENT_TIME, WindowPlan, input_columns
from assets.dtypes import FLINK_TYPES, dtype_of_flink_column
from assets.offline_layout import EVENT_TIME_COLUMN, feature_table_columns
from assets.registry import Registry, RegistryError, load_registry, relative_path
from assets.specs import FeatureGroup
from assets.udfs import load_udf_module
from infra.errors import PlatformError
from infra.flink_sql import describe
from infra.java import ensure_java_home
from infra.settings import PROJECT_ROOT

PLACEHOLDER_CONNECTOR = "'connector' = 'datagen'"
TRANSFORM_VIEW = "transform_sql_output"
PROBLEM_MARK = "stream-sql-problem "  # Flink may log to stdout too; problems are the lines with this mark
POSITION = re.compile(r"line (\d+), column (\d+)")
TIMEOUT_SECONDS = 300


def _flink_rejections() -> tuple[type[Exception], ...]:
    """What Flink raises for a DDL or query it rejects: its Java exception, as PyFlink maps it or as py4j passes
    it on (imported here: only the validating subprocess loads PyFlink). Anything else is a crash, not the SQL's
    fault, and propagates."""
    from py4j.protocol import Py4JJavaError
    from pyflink.util.exceptions import JavaException

    return JavaException, Py4JJavaError


def _flink_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    return (java.getMessage() if java is not None else str(exc)).strip().splitlines()[0]


def _where(message: str) -> str:
    match = POSITION.search(message)
    return f"line {match.group(1)}, column {match.group(2)}" if match else "(query)"


def _problem(path: Path, field: str, message: str, fix: str) -> dict:
    return {"what": f"{relative_path(path)}: {field}: {message}", "fix": fix}


def group_problems(t_env, registry: Registry, group: FeatureGroup) -> list[dict]:
    """Problems of one group's stream SQL, validated in `t_env` (a Flink TableEnvironment)."""
    source_path = group.stream_dir / "source.sql"
    created = []
    try:
        problems = []
        for table, ddl in group.stream.source_ddls.items():
            try:
                t_env.execute_sql(re.sub(r"\{\{\s*connector\s*\}\}", PLACEHOLDER_CONNECTOR, ddl))
            except _flink_rejections() as exc:
                message = _flink_message(exc)
                return [_problem(source_path, _where(message), f"Flink cannot create the table {table}: {message}",
                                 "fix the DDL")]
            created.append(table)
            problems += _column_problems(t_env, registry.sources[table], source_path)
        return problems + _transform_problems(t_env, registry, group)
    finally:
        for table in created:
            t_env.execute_sql(f"DROP TABLE IF EXISTS `{table}`")


def _column_problems(t_env, source, source_path: Path) -> list[dict]:
    """The columns source.sql declares for `source` against its contract."""
    problems = []
    contract = {c.name: c.dtype for c in source.columns}
    for column in describe(t_env, source.name):
        if column.extras and column.expression is None:
            problems.append(_problem(
                source_path, column.name, f"{column.extras} columns cannot be declared: the platform reads "
                "the stream's raw lines and checks them against the contract", "remove the column"))
        elif column.physical and contract.get(column.name) != dtype_of_flink_column(column):
            problems.append(_problem(
                source_path, column.name, f"column is {dtype_of_flink_column(column)}, the contract "
                f"{source.file.name} has {contract[column.name] if column.name in contract else 'no such column'}",
                "declare the contract's columns with their types (computed columns are free)"))
    return problems


def _expected_output(registry: Registry, group: FeatureGroup) -> dict[str, str | None]:
    """The columns transform.sql must output, with their dtypes (None: any): the key, the features and
    `feature_ts`; for a windowed group the events the window operator reads (the key and the plan's input
    columns, the event time first; a declared group's also `rowtime`)."""
    entity = registry.entity_of(group)
    if group.aggregations is None:
        return dict(feature_table_columns(registry, group))
    if not group.aggregations.rendered:
        plan = WindowPlan.for_group(group, None, entity.key)
        return {entity.key: entity.dtype, EVENT_TIME: "timestamp", **{name: None for name in plan.inputs[1:]}}
    source = registry.sources[group.aggregations.source]
    return {entity.key: entity.dtype, "rowtime": "timestamp",
            **{name: source.column(name).dtype for name in input_columns(group, source)}}


def _output_problems(path: Path, actual: dict[str, str], expected: dict[str, str | None], extra_allowed: bool,
                     what: str) -> list[dict]:
    """A query's output columns against what it must output (`extra_allowed`: other columns may follow)."""
    problems = [_problem(path, name, f"the query outputs no column {name!r} (it outputs {', '.join(actual)})",
                         "add it to the SELECT") for name in expected if name not in actual]
    problems += [_problem(path, name, f"output column {name!r} is {actual[name]}, {what} {expected[name]}",
                          "CAST it or change the dtype")
                 for name in expected if name in actual and expected[name] and actual[name] != expected[name]]
    if not extra_allowed:
        problems += [_problem(path, "(output)", f"column {name!r} is not declared in feature.yaml",
                              "declare it as a feature or drop it from the SELECT") for name in actual if name not in expected]
    return problems


def _planned(t_env, sql: str, path: Path) -> tuple[dict[str, str] | None, list[dict]]:
    """The output columns (name -> dtype) of `sql` as Flink plans it, or the problem why it cannot."""
    try:
        table = t_env.sql_query(sql.strip().rstrip(";"))
    except _flink_rejections() as exc:
        message = _flink_message(exc)
        return None, [_problem(path, _where(message), f"Flink rejects the query: {message}", "fix the SQL")]
    t_env.create_temporary_view(TRANSFORM_VIEW, table)
    try:
        return {column.name: dtype_of_flink_column(column) for column in describe(t_env, TRANSFORM_VIEW)}, []
    finally:
        t_env.drop_temporary_view(TRANSFORM_VIEW)


def _transform_problems(t_env, registry: Registry, group: FeatureGroup) -> list[dict]:
    """transform.sql (and features.sql over the aggregates it feeds) plan and output what they must."""
    from pyflink.table.udf import udf as flink_udf

    functions = load_udf_module(group.udf_path, group.name) if group.udfs else None
    for udf in group.udfs:
        t_env.create_temporary_system_function(udf.name, flink_udf(getattr(functions, udf.name),
                                                                    result_type=FLINK_TYPES[udf.returns]))
    try:
        path = group.stream_dir / "transform.sql"
        actual, problems = _planned(t_env, group.stream.transform_sql, path)
        if actual is None:
            return problems
        windowed_by_hand = group.aggregations is not None and not group.aggregations.rendered
        problems = _output_problems(path, actual, _expected_output(registry, group), windowed_by_hand,
                                    "feature.yaml declares")
        if windowed_by_hand and not problems:
            problems = _features_problems(t_env, registry, group, actual)
        return problems
    finally:
        for udf in group.udfs:
            t_env.drop_temporary_system_function(udf.name)


def _features_problems(t_env, registry: Registry, group: FeatureGroup, events: dict[str, str]) -> list[dict]:
    """features.sql over the view `windowed` (the key, the aggregates typed from transform.sql's columns,
    `feature_ts`) outputs the key, the features and `feature_ts` with their declared types."""
    entity = registry.entity_of(group)
    plan = WindowPlan.for_group(group, None, entity.key).typed(events)
    columns = [(entity.key, entity.dtype), *((f.name, f.dtype) for f in plan.features), (EVENT_TIME_COLUMN, "timestamp")]
    t_env.execute_sql("CREATE TEMPORARY TABLE windowed (" + ", ".join(f"`{n}` {FLINK_TYPES[d]}" for n, d in columns)
                      + f") WITH ({PLACEHOLDER_CONNECTOR})")
    try:
        path = group.stream_dir / "features.sql"
        actual, problems = _planned(t_env, group.stream.features_sql, path)
        if actual is None:
            return problems
        return _output_problems(path, actual, dict(feature_table_columns(registry, group)), False, "feature.yaml declares")
    finally:
        t_env.execute_sql("DROP TEMPORARY TABLE windowed")


def validate_stream_queries(registry: Registry) -> list[RegistryError]:
    """Validate every group's stream SQL in one Flink subprocess; one error per problem (none: all valid)."""
    if not any(group.stream for group in registry.groups.values()):
        return []
    ensure_java_home()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "quality.stream_sql", str(registry.root)], cwd=PROJECT_ROOT,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise PlatformError(f"validating stream SQL with Flink took over {TIMEOUT_SECONDS} s",
                            "check that Java 17 works (infra/java_home.sh) and retry") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlatformError(f"the Flink validator of stream SQL failed: {tail}",
                            "check that apache-flink is installed (make setup) and Java 17 is found")
    return [RegistryError(p["what"], p["fix"]) for p in
            (json.loads(line.removeprefix(PROBLEM_MARK)) for line in done.stdout.splitlines()
             if line.startswith(PROBLEM_MARK))]


def main(root: str) -> None:
    """Subprocess entry: print each problem of the registry's stream SQL as one JSON line."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    registry = load_registry(Path(root))
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for group in registry.groups.values():
        if group.stream is not None:
            for problem in group_problems(t_env, registry, group):
                print(PROBLEM_MARK + json.dumps(problem), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
