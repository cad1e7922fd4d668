"""The code location Dagster loads (`dagster dev`, `dg check defs`): the defs folder's components.

`orchestration/defs/feature_platform/defs.yaml` instantiates `orchestration.component.FeaturePlatform`,
which builds everything from the registry the settings point at (`registry_dir`, FP_REGISTRY_DIR), as
for featctl.
"""

import warnings
from pathlib import Path

import dagster as dg

# Loading through components hands the asset checks on as AssetsDefinitions, which Dagster converts back
# with a beta parameter of its own; the warning is about Dagster's code, not ours.
warnings.filterwarnings("ignore", message="Parameter `execution_type` of function `AssetsDefinition.__init__`",
                        category=dg.BetaWarning)

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
