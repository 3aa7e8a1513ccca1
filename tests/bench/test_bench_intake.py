"""The intake benchmark keeps every run's figures, not only the last."""

from __future__ import annotations

import json

from bench.bench_intake import save_results


def test_each_run_is_appended_to_the_history(tmp_path):
    save_results({"ratio": 0.27, "intake_rps": 850.0}, tmp_path)
    save_results({"ratio": 0.31, "intake_rps": 990.0}, tmp_path)
    assert json.loads((tmp_path / "intake.json").read_text())["ratio"] == 0.31  # the latest
    lines = [json.loads(line) for line in
             (tmp_path / "intake-history.jsonl").read_text().splitlines()]
    assert [line["ratio"] for line in lines] == [0.27, 0.31]
    assert all(line["at"].endswith("+00:00") and "commit" in line for line in lines)
    assert len(lines[0]["commit"]) == 40  # the checkout's commit (tests run in the checkout)
