"""The code location Dagster loads (`dagster dev`, `dg check defs`): everything comes from the registry.

The registry is the folder settings point at (`registry_dir`, FP_REGISTRY_DIR), as for featctl.
"""

from assets.registry import load_registry
from infra.settings import load_settings
from orchestration.factory import build_definitions

settings = load_settings()
defs = build_definitions(load_registry(settings.registry_dir), settings)
