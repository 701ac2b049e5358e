"""`python -m leadflow` is the `leadflow` command."""

from leadflow.cli import main

main()
