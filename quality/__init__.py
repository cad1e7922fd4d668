"""The quality gate: Great Expectations suites built from source contracts and feature.yaml, schema diffs,
schema-change alerts, the registry lock and `featctl check`, and record-level contracts for streams.

Engine code only: no Dagster here (orchestration/checks.py turns reports into asset check results).
"""
