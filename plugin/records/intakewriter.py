"""The intake writer process: ``python -m sharewise.plugin.records.intakewriter``.

Started and kept running by a web process (:func:`plugin.records.services.use_writer_process`,
through :class:`sharewise.plugin.writerprocess.WriterSupervisor`), never by hand. It commits the
intakes of every web process on this SQLite database (:func:`services.write_intakes`, in
shared transactions) and answers each sender; see :mod:`plugin.writerprocess`. Settings come
from the environment, as for every other process; it exits with the web process that
started it.
"""

from __future__ import annotations

import logging
import os

from sharewise.plugin import settings
from sharewise.plugin.db import database_file, make_engine
from sharewise.plugin.groupcommit import GroupCommitter
from sharewise.plugin.records.services import WIRE_VERSION, IntakeRows, write_intakes
from sharewise.plugin.writerprocess import WriterServer, address_for, die_with_parent, run_server

log = logging.getLogger("sharewise.plugin.records.intakewriter")


def main() -> None:
    """Serve the database's intake writes until SIGTERM (or the parent's exit)."""
    die_with_parent(int(os.environ.get("SHAREWISE_WRITER_PARENT", os.getppid())))
    cfg = settings.load()
    logging.basicConfig(level=str(cfg.get("LOG_LEVEL", "INFO")).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    file = database_file(cfg["DATABASE_URL"])
    if file is None:
        raise SystemExit("the intake writer serves a SQLite database file only")
    engine = make_engine(cfg["DATABASE_URL"])
    committer = GroupCommitter(engine, write_intakes, name="sharewise-intake-writer",
                               max_batch=int(cfg["INTAKE_MAX_BATCH"]))
    try:
        server = WriterServer(committer, address_for(file, WIRE_VERSION),
                              IntakeRows.from_wire, max_batch=int(cfg["INTAKE_MAX_BATCH"]))
    except OSError as exc:
        # the address is taken: a writer still stopping, or another user's process (the
        # web processes will not use that one: they check who runs it)
        log.warning("intake writer not started: its address is taken (%s)",
                    type(exc).__name__)
        raise SystemExit(1) from None
    log.info("intake writer serving (pid %d)", os.getpid())
    try:
        run_server(server)
    finally:
        engine.dispose()
    batches, items = committer.stats
    log.info("intake writer stopped: %d intakes in %d transactions", items, batches)


if __name__ == "__main__":
    main()
