"""WSGI entry point for gunicorn: ``gunicorn sharewise.plugin.wsgi:app``.

Everything a request would otherwise do once per process is done here: the form template
and font, intake's warning limits, the bank holidays. Then ``gc.freeze()`` moves every object
that exists by now (modules, schemas, the parsed template: several hundred thousand) out of
the collector's sight, so a full collection walks only what requests allocate; measured under
the intake benchmark without it, full collections paused a worker for 86 to 105 ms, with
SQLite's write lock held when the pause fell inside a commit. Last, the intakes go to the
database's writer process, which one of the web processes keeps running
(:mod:`sharewise.plugin.writerprocess`).
"""

import gc

from sharewise.forms.prefill import warm_up
from sharewise.plugin.app import create_app
from sharewise.plugin.records import policy
from sharewise.plugin.records import prefill as intake_prefill
from sharewise.plugin.records.services import use_writer_process

app = create_app()
warm_up()  # parse the form template and font now, not during the first request
intake_prefill.warm_up()  # intake's warning limits, measured once per process
policy.warm_up()  # the bank holidays due dates are counted in
gc.freeze()  # after everything above is loaded
writer = use_writer_process(app)  # one writer process per database commits every intake
