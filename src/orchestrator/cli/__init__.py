"""The `orchestrator` command: one entry point, one subcommand per task."""
