"""Streaming: Flink SQL of a feature folder becomes a PyFlink job that keeps the online store fresh."""
