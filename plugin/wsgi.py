"""WSGI entry point for gunicorn: ``gunicorn sharewise.plugin.wsgi:app``.

A bad setting or an unreachable database stops the worker with one line (no traceback) and
gunicorn's "worker failed to boot" exit code, so gunicorn stops instead of restarting it.
"""

import sys

from sharewise.plugin.app import create_app
from sharewise.plugin.settings import SettingsError, StartupError

WORKER_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR

try:
    app = create_app()
except (SettingsError, StartupError) as exc:
    print(f"sharewise: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(WORKER_BOOT_ERROR) from None
