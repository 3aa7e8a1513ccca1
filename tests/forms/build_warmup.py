"""Builds the reader workers' warm-up samples (``forms/warmup_sample*.pdf``).

Run from the project root: ``python -m tests.forms.build_warmup`` (after
``python -m forms.template``). It needs the test extras (pypdfium2, pikepdf) and this suite's
PDFium filler (``tests/forms/viewers.py``), hence its place here; see :mod:`forms.warmup` for
what the samples are and why workers read them.
"""

from __future__ import annotations

import hashlib
import re

from sharewise.forms.warmup import SPARSE_ANSWERS, WARMUP_PATHS, WARMUP_PREFILL

__all__ = ["build_samples", "main"]


def build_samples() -> tuple[bytes, bytes]:
    """Prefill the committed template for the warm-up record and complete it through PDFium,
    once fully and once sparsely (the contents of :data:`WARMUP_PATHS`, in order).

    Needs pypdfium2 and pikepdf (the test extras) and the test suite's filler.
    """
    from sharewise.forms.prefill import prefill
    from tests.forms.viewers import ENTERED, fill_with_pdfium

    prefilled = prefill(WARMUP_PREFILL).pdf
    return (_fixed_id(fill_with_pdfium(prefilled, ENTERED)),
            _fixed_id(fill_with_pdfium(prefilled, SPARSE_ANSWERS)))


_LAST_ID = re.compile(rb"(/ID\s*\[\s*<[0-9A-Fa-f]+>\s*<)([0-9A-Fa-f]+)(>\s*\]\s*>>\s*startxref"
                      rb"\s+\d+\s+%%EOF\s*)$")


def _fixed_id(data: bytes) -> bytes:
    """``data`` with the second ``/ID`` of its last trailer derived from its other bytes.

    PDFium writes a random one on every save (the only part of its output that changes), so
    the committed sample could not otherwise be rebuilt byte for byte. Same length, after the
    cross-reference table: no offset moves.
    """
    found = _LAST_ID.search(data)
    if found is None:
        raise ValueError("no trailer /ID where PDFium writes it")
    digest = hashlib.md5(data[: found.start(2)], usedforsecurity=False).hexdigest().upper()
    digest = digest.encode("ascii")[: len(found[2])].ljust(len(found[2]), b"0")
    return data[: found.start(2)] + digest + data[found.end(2):]


def main() -> None:
    """Rewrite the committed samples from the current template and spec."""
    for path, data in zip(WARMUP_PATHS, build_samples(), strict=True):
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
