"""`python -m leadflow_cli` is the `leadflow` command."""

from leadflow_cli.app import main

main()
