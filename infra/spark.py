"""Spark configuration for every profile: Hive support, UTC, and the metastore/warehouse from settings.

The same dict feeds dagster-pyspark's `PySparkResource` and `spark_session()` for the CLI and tests, so
a session started anywhere in one process is the same session (`getOrCreate`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from infra.code_package import code_package, ships_code
from infra.java import ensure_java_home
from infra.settings import Settings

LOG4J_CONFIG = Path(__file__).resolve().parent / "log4j2.properties"
JDBC_DRIVERS = {"postgresql": "org.postgresql.Driver", "mysql": "com.mysql.cj.jdbc.Driver"}  # by URL subprotocol


def spark_config(settings: Settings) -> dict[str, str]:
    """Spark properties for `settings`: embedded Derby metastore locally, a thrift metastore on a cluster."""
    data_dir = settings.data_dir.resolve()
    conf = {
        "spark.master": settings.spark_master,
        "spark.app.name": "feature-platform",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": settings.warehouse_dir or str(data_dir / "warehouse"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "5000",
        "spark.hadoop.hive.exec.dynamic.partition.mode": "nonstrict",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "2g",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.extraJavaOptions": (f"-Dderby.system.home={data_dir} -Duser.timezone=UTC "
                                          f"-Dlog4j.configurationFile={LOG4J_CONFIG} "
                                          f"-Dfp.spark.log={data_dir / 'logs' / 'spark.log'}"),
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if settings.hive_metastore_uri:
        conf["spark.hadoop.hive.metastore.uris"] = settings.hive_metastore_uri
    elif settings.hive_metastore_jdbc_url:  # a shared database: every process sees one catalog at the same time
        conf.update({"spark.hadoop.javax.jdo.option.ConnectionURL": settings.hive_metastore_jdbc_url,
                     "spark.hadoop.javax.jdo.option.ConnectionDriverName": JDBC_DRIVERS[
                         settings.hive_metastore_jdbc_url.split(":")[1]],
                     # A fresh database gets the metastore's tables on first use. Without their foreign keys:
                     # DataNucleus adds one while its own transaction holds the referenced table, and the two
                     # connections deadlock on PostgreSQL (a production metastore is made by Hive's schematool).
                     "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
                     "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
                     "spark.hadoop.datanucleus.schema.autoCreateConstraints": "false",
                     "spark.hadoop.hive.metastore.schema.verification": "false"})
    else:
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={data_dir / 'metastore_db'};create=true"
        )
    if ships_code(settings.spark_master):  # executors on other hosts import the platform from its zip
        conf["spark.submit.pyFiles"] = str(code_package(settings))
    conf.update(settings.spark_conf)
    return conf


def prepare_spark_environment(settings: Settings) -> None:
    """Point Spark at Java 17 and this interpreter before its JVM starts; creates the data directory."""
    ensure_java_home()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TZ", "UTC")
    if settings.spark_master.startswith(("local", "spark://127.0.0.1:", "spark://localhost:")):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # an embedded or loopback cluster: bind loopback only
    settings.data_dir.mkdir(parents=True, exist_ok=True)


def spark_session(settings: Settings):
    """The process's Spark session with Hive support, started on first use."""
    from pyspark.sql import SparkSession

    prepare_spark_environment(settings)
    builder = SparkSession.builder
    for key, value in spark_config(settings).items():
        builder = builder.config(key, value)
    session = builder.enableHiveSupport().getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
