"""WSGI entry point for gunicorn: ``gunicorn sharewise.plugin.wsgi:app``.

``sharewise web`` and ``serve`` run gunicorn with ``--preload``: this module is imported once,
in gunicorn's master, then its workers are forked. So that the workers share rather than copy
what every one of them needs, it also loads what they would otherwise load on their first
requests (the form template and font, reportlab for the final record, the bank holidays),
then calls ``gc.freeze()``, as the :mod:`gc` documentation advises before such a fork, so the
collector does not touch (and so copy) those pages. Database connections are never shared
across the fork (:mod:`sharewise.plugin.db` gives every forked child fresh pools).
"""

import gc

from sharewise.forms import finalise, prefill
from sharewise.plugin.app import create_app
from sharewise.plugin.records import policy

app = create_app()
prefill.warm_up()
finalise.warm_up()
policy.warm_up()
gc.freeze()
