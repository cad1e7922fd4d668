"""A feature group's udf.py, loaded once the same way for every engine that registers its functions.

Spark registers them for batch.sql, Flink for the stream job and for `featctl check`'s planning of
transform.sql; each wraps the plain Python functions in its own UDF type, by the names feature.yaml lists.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_udf_module(udf_path: Path | str, group_name: str) -> ModuleType:
    """The group's udf.py as the module `feature_udfs_<group>` (also put in sys.modules, so Spark's
    cloudpickle can ship it by value to executors that cannot import it)."""
    module_name = f"feature_udfs_{group_name}"
    spec = importlib.util.spec_from_file_location(module_name, udf_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
