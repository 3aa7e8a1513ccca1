"""The broker benchmark's tallies: lost, twice and errors are read from the consumers' record
files as the report says, caps default and can be overridden. (No process is started, no
timing is asserted.)"""

from __future__ import annotations

import pytest

from bench.bench_broker import DEFAULT_CAPS, outcome, parse_caps, percentile, read_records, split


def test_lost_twice_and_errors_come_from_the_record_files(tmp_path):
    a, b = tmp_path / "consumer-0.txt", tmp_path / "consumer-1.txt"
    a.write_text("g p0-0\nd p0-0\ng p0-1\n"  # p0-1 got, never processed: killed mid-way
                 "e transport JSONDecodeError unrecoverable JSONDecodeError('Expecting value')\n")
    b.write_text("g p0-1\nd p0-1\ng p1-0\nd p1-0\ng p1-0\nd p1-0\n"
                 "e transport OperationalError recoverable OperationalError('locked')\n")
    tally = read_records([a, b, tmp_path / "consumer-2.txt"])  # a killed one may leave none
    result = outcome({"p0-0", "p0-1", "p1-0", "p1-1"}, tally)
    assert result["sent"] == 4
    assert result["processed"] == 3
    assert result["lost"] == 1  # p1-1
    assert result["twice"] == 2  # p0-1 redelivered, p1-0 delivered twice
    assert result["unrecoverable"] == 1
    assert result["errors"] == {"transport:JSONDecodeError:unrecoverable": 1,
                                "transport:OperationalError:recoverable": 1}
    assert result["first_error"] == "JSONDecodeError('Expecting value')"


def test_shares_and_percentiles():
    assert split(20000, 8) == [2500] * 8
    assert split(10, 3) == [4, 3, 3]
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.99) == 5.0


def test_caps_default_for_the_slow_transports_and_can_be_overridden():
    assert parse_caps([]) == DEFAULT_CAPS
    assert parse_caps(["sqla=20000"])["sqla"] == 20000
    with pytest.raises(SystemExit):
        parse_caps(["nosuch=5"])
