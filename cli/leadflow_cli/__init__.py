"""The `leadflow` command: the one package that may import every service.

`shared/leadflow` is the common library the services build on and never imports a
service; the commands that span services (running them, `simulate`, `report`,
`people erase`) live here and import the services' modules directly, so that mypy and
the import graph see every dependency.
"""
