"""WSGI entry point for gunicorn: ``gunicorn sharewise.plugin.wsgi:app``."""

from sharewise.plugin.app import create_app

app = create_app()
