"""Prefect flows: thin chains of tasks over the stages in `pipelines/`."""
