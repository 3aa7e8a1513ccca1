"""WSGI entry point for gunicorn: ``gunicorn sharewise.plugin.wsgi:app``.

``sharewise web`` and ``serve`` run gunicorn with ``--preload``: this module is imported once,
in gunicorn's master, then its workers are forked. ``gc.freeze()`` (as the :mod:`gc`
documentation advises before such a fork) keeps the collector from touching, and so copying,
the pages the workers share. Database connections are never shared across the fork
(:mod:`sharewise.plugin.db` gives every forked child fresh pools).
"""

import gc

from sharewise.plugin.app import create_app

app = create_app()
gc.freeze()
