"""The code location Dagster loads (`dagster dev`, `dg check defs`): the defs folder's components.

`orchestration/defs/feature_platform/defs.yaml` instantiates `orchestration.component.FeaturePlatform`,
which builds everything from the registry the settings point at (`registry_dir`, FP_REGISTRY_DIR), as
for featctl.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
