"""The Prefect flows, the local runner and the command line (docs/orchestration.md)."""
