"""bandit over the product code (issue 18): no finding of medium severity or higher, except
those a ``# nosec Bxxx`` comment on the line justifies (each with its reason beside it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bandit_finds_nothing_of_medium_severity_or_higher():
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "plugin", "forms", "tasks", "config",
         "--severity-level", "medium", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(proc.stdout)
    found = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
             for r in report["results"]]
    assert found == [], "\n".join(found)
    totals = report["metrics"]["_totals"]
    assert totals["loc"] > 10_000  # it really scanned the code
    # the justified exceptions, each a "# nosec Bxxx" with its reason: a new one is a decision
    # to make in review, not a way round this test
    assert totals["skipped_tests"] + totals["nosec"] <= 3, totals
