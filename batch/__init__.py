"""Batch generation and publish: HiveQL per feature group on Spark, and the partition publish to Redis."""
