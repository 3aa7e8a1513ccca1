"""Default settings (``defaults.toml``) and the example tenants file, shipped as package data.

Read with :mod:`importlib.resources` (``sharewise.config``), so an installed wheel has them.
"""
