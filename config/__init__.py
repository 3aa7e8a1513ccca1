"""Configuration data shipped with the package: the example tenants file (``tenants.example.toml``).

The settings themselves (every ``SHAREWISE_*`` variable: default, type, check, documentation)
are defined in code, in :mod:`sharewise.plugin.settings`.
"""
