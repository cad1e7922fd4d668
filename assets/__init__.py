"""The feature registry: folders of YAML and SQL loaded into typed, validated specs."""
