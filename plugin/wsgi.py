"""WSGI entry point for gunicorn: ``gunicorn plugin.wsgi:app``."""

from forms.prefill import warm_up
from plugin.app import create_app
from plugin.records import prefill as intake_prefill

app = create_app()
warm_up()  # parse the form template and font now, not during the first request
intake_prefill.warm_up()  # intake's warning limits, measured once per process
