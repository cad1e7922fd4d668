"""Dagster orchestration: definitions built from the registry, resources, schedules, and the featctl CLI."""
