"""The dg defs folder: each subfolder's `defs.yaml` is a component instance (pyproject.toml [tool.dg])."""
