"""The code location Dagster loads (`dagster dev`, `dg check defs`): everything comes from the registry."""

from assets.registry import load_registry
from infra.settings import load_settings
from orchestration.factory import build_definitions

defs = build_definitions(load_registry(), load_settings())
