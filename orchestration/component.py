"""The platform as a Dagster Component: one `defs.yaml` turns the registry into every definition.

As dagster-dbt's `DbtProjectComponent` turns a dbt project into assets, `FeaturePlatform` turns the
registry (a folder of feature groups and sources) into assets, checks, the daily job, its schedule and
the sensors. `orchestration/defs/feature_platform/defs.yaml` names it, so `dg list defs`, `dg check defs`
and `dagster dev` load it as Dagster users expect; featctl calls the same `build_definitions`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.registry import load_registry
from infra.settings import load_settings
from orchestration.factory import build_definitions


class FeaturePlatform(dg.Component, dg.Model, dg.Resolvable):
    """Every feature group folder of a registry as Dagster definitions, with the settings of a profile."""

    registry_dir: str | None = Field(
        default=None,
        description="The registry folder, relative to the project; unset: the settings' registry_dir (FP_REGISTRY_DIR).")
    profile: str | None = Field(
        default=None, description="The settings profile (infra/profiles/<name>.yaml); unset: FP_PROFILE, else local.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The definitions of the registry and settings this instance names (read when the code location loads)."""
        settings = load_settings(**({"profile": self.profile} if self.profile else {}))
        registry_dir = context.project_root / self.registry_dir if self.registry_dir else Path(settings.registry_dir)
        return build_definitions(load_registry(registry_dir), settings)
