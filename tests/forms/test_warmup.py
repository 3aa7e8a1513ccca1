"""The reader workers' warm-up samples: committed, valid completed uploads of the current
template, spec and prefill, read by every new worker, which still answers correctly."""

from __future__ import annotations

import pytest
from pypdf.generic import IndirectObject, NameObject
from viewers import ENTERED, NORMALISED, fill_with_pdfium

import sharewise.forms.reader as reader_module
from sharewise.forms import sandbox, warmup
from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.reader import UploadRejected, expected_display, read_pdf, read_upload
from sharewise.forms.sandbox import ReaderPool
from sharewise.forms.spec import SPEC_PATH, load_spec
from sharewise.forms.warmup import (
    SPARSE_ANSWERS,
    WARMUP_PATHS,
    WARMUP_PREFILL,
    WARMUP_RECORD_ID,
    warmup_shown,
)
from tests.forms.build_warmup import build_samples

SPEC = load_spec()
TEMPLATE = SPEC_PATH.with_name("decision_record.pdf")
REBUILD = ("stale warm-up sample: run `python -m tests.forms.build_warmup` and commit "
           "forms/warmup_sample*.pdf")


def test_the_samples_are_committed_next_to_the_template():
    assert [p.name for p in WARMUP_PATHS] == ["warmup_sample.pdf", "warmup_sample_sparse.pdf"]
    for path in WARMUP_PATHS:
        assert path.parent == TEMPLATE.parent
        assert path.is_file() and path.read_bytes().startswith(b"%PDF-")


def test_the_sample_prefill_is_already_normalised():
    """What :func:`warmup_shown` compares with is exactly what prefill wrote."""
    assert normalise_prefill(WARMUP_PREFILL) == WARMUP_PREFILL
    assert WARMUP_PREFILL["record_id"] == WARMUP_RECORD_ID
    assert warmup_shown() == expected_display(WARMUP_RECORD_ID, WARMUP_PREFILL)


def test_the_complete_sample_reads_back_as_a_valid_filled_upload():
    [complete, _] = WARMUP_PATHS
    read = read_upload(complete.read_bytes(), record_id=WARMUP_RECORD_ID,
                       expected=WARMUP_PREFILL, isolate=False)
    assert read.record_id == WARMUP_RECORD_ID
    assert read.problems == ()
    assert set(read.values) == set(SPEC.names)
    assert read.prefill_hash
    for name, value in NORMALISED.items():
        assert read.values[name] == value, name
    for name, value in WARMUP_PREFILL.items():
        assert read.values[name] == value, name


def test_the_sparse_sample_reads_back_with_only_its_buttons_set():
    [_, sparse] = WARMUP_PATHS
    read = read_upload(sparse.read_bytes(), record_id=WARMUP_RECORD_ID,
                       expected=WARMUP_PREFILL, isolate=False)
    assert read.record_id == WARMUP_RECORD_ID and read.problems == ()
    assert set(read.values) == set(SPEC.names)
    for f in SPEC.fields:
        if f.name in SPARSE_ANSWERS:
            assert read.values[f.name] == SPARSE_ANSWERS[f.name]
        elif f.name in WARMUP_PREFILL:
            assert read.values[f.name] == WARMUP_PREFILL[f.name]
        else:
            assert read.values[f.name] in (None, False), f.name


def test_the_sparse_answers_set_every_radio_group_to_another_option_than_the_complete_one():
    radios = {f.name: f for f in SPEC.fields if f.type == "choice" and f.widget == "radio"}
    assert set(SPARSE_ANSWERS) == set(radios)
    for name, value in SPARSE_ANSWERS.items():
        assert value in radios[name].option_values
        assert value != NORMALISED[name]


def test_the_samples_are_for_the_warm_up_record_only():
    for path in WARMUP_PATHS:
        with pytest.raises(UploadRejected) as caught:
            read_pdf(path.read_bytes(), "rec_someone_else", warmup_shown())
        assert caught.value.code == "wrong_record"


def test_the_committed_samples_complete_the_current_prefill():
    """PDFium appends to the prefilled file, so a changed spec, template or prefill shows as a
    different start; another PDFium release (other appended bytes) does not make them stale."""
    prefilled = prefill(WARMUP_PREFILL).pdf
    for path in WARMUP_PATHS:
        assert path.read_bytes().startswith(prefilled), REBUILD


def test_a_fresh_build_is_deterministic_and_completes_the_same_prefill():
    fresh = build_samples()
    assert fresh == build_samples()
    prefilled = prefill(WARMUP_PREFILL).pdf
    assert all(data.startswith(prefilled) and len(data) > len(prefilled) for data in fresh)


def test_warm_up_reads_the_samples_and_learns_their_objects(monkeypatch):
    """The worker's warm-up parses the samples (not only the template): the reuse cache
    holds more objects afterwards, and still none holding a text value."""
    cache = reader_module._parsed_objects
    try:
        cache.clear()
        monkeypatch.setattr(warmup, "WARMUP_PATHS", ())
        sandbox._warm_up()  # without samples: the template alone, as before
        template_only = len(cache)
        assert template_only > 0
        cache.clear()
        monkeypatch.undo()
        sandbox._warm_up()
        assert len(cache) > template_only
        for obj in cache.values():
            value = dict.get(obj, "/V")
            assert value is None or isinstance(value, NameObject | IndirectObject)
    finally:
        cache.clear()


def test_a_missing_sample_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setattr(warmup, "WARMUP_PATHS", (tmp_path / "gone.pdf", WARMUP_PATHS[1]))
    try:
        sandbox._warm_up()
    finally:
        reader_module._parsed_objects.clear()


def test_a_freshly_started_worker_reads_real_uploads_correctly(sample_prefill):
    """A fresh pool (its worker warmed up on the samples) reads another record's upload, a
    partial one, and the samples' own record, each correctly."""
    expected = normalise_prefill(sample_prefill)
    record_id = expected["record_id"]
    shown = expected_display(record_id, expected)
    prefilled = prefill(sample_prefill).pdf
    complete = fill_with_pdfium(prefilled, ENTERED)
    partial = fill_with_pdfium(prefilled, {"lawful_basis": "Public task",
                                           "decision_reasons": "Only part of it."})
    pool = ReaderPool(1)
    try:
        read = pool.read(complete, record_id, shown, 5.0)
        assert read.record_id == record_id and read.problems == ()
        assert {k: read.values[k] for k in NORMALISED} == NORMALISED
        assert {k: read.values[k] for k in expected} == expected
        read = pool.read(partial, record_id, shown, 5.0)
        assert read.values["lawful_basis"] == "public_task"
        assert read.values["decision_reasons"] == "Only part of it."
        assert read.values["decision"] is None and read.values["check_necessary"] is False
        with pytest.raises(UploadRejected) as caught:
            pool.read(WARMUP_PATHS[0].read_bytes(), record_id, shown, 5.0)
        assert caught.value.code == "wrong_record"
        read = pool.read(WARMUP_PATHS[0].read_bytes(), WARMUP_RECORD_ID, warmup_shown(), 5.0)
        assert read.record_id == WARMUP_RECORD_ID
    finally:
        pool.close()
