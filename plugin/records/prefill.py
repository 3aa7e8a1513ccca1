"""Intake's side of the form library: check prefill values once; the PDF is made on demand.

Intake does not store the prefilled PDF: many records never need it before their first
download. :func:`check_prefill` validates the values with the form library's own prefill
schema (the same check :func:`sharewise.forms.prefill.prefill` makes, so values that pass here
cannot be refused when the PDF is made; the values the event schema already loaded through the
form's own fields are not loaded twice, see ``trusted``), computes the hash prefill embeds, and
takes the warnings from the real fill (:func:`sharewise.forms.prefill.fill` of the same
values, as :func:`sharewise.forms.prefill.prefill` makes it; the bytes are dropped), so they
are prefill's warnings by construction. Intake stores the values and the hash.
:func:`build_pdf` makes the PDF from them on first download: the fill is deterministic, so
these are the bytes prefill makes. :func:`sharewise.plugin.records.services.prefilled_pdf`
serves and keeps it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sharewise.forms.prefill import fill
from sharewise.forms.prefill import normalise_prefill as normalise
from sharewise.forms.spec import TenantOptions
from sharewise.forms.values import values_hash

__all__ = ["CheckedPrefill", "build_pdf", "build_pdf_unchecked", "check_prefill", "normalise"]


@dataclass(frozen=True)
class CheckedPrefill:
    """Prefill values the form library accepts: normalised, hashed, with prefill's warnings."""

    values: dict[str, Any]  # as :func:`sharewise.forms.prefill.normalise_prefill` returns them
    prefill_hash: str  # what :func:`sharewise.forms.prefill.prefill` embeds
    warnings: tuple[str, ...]  # what :func:`sharewise.forms.prefill.prefill` reports


def check_prefill(data: Mapping[str, Any], *, trusted: Collection[str] = (),
                  version: int = 1, options: TenantOptions = ()) -> CheckedPrefill:
    """Validate ``data`` as :func:`sharewise.forms.prefill.prefill` would; its hash and warnings.

    Raises :class:`sharewise.forms.prefill.FormDataError` for values prefill would refuse.
    ``trusted``: fields whose values the form's own fields loaded already (intake passes
    :func:`sharewise.plugin.records.schemas.trusted_prefill_fields`); they are not loaded again
    (see :func:`sharewise.forms.prefill.normalise_prefill`'s ``loaded``).
    """
    values = normalise(data, loaded=trusted, version=version)
    digest = values_hash(values)
    filled = fill(values, record_id=values["record_id"], prefill_hash=digest, version=version,
                  tenant_options=options)
    return CheckedPrefill(values, digest, filled.warnings)


def build_pdf(values: Mapping[str, Any], prefill_hash: str, version: int = 1,
              options: TenantOptions = ()) -> bytes:
    """The prefilled PDF of stored values (the bytes :func:`sharewise.forms.prefill.prefill`
    makes), in the record's schema ``version`` with its tenant's ``options``."""
    normalised = normalise(values, version=version)
    return fill(normalised, record_id=normalised["record_id"], prefill_hash=prefill_hash,
                version=version, tenant_options=options).pdf


def build_pdf_unchecked(values: Mapping[str, Any], record_id: str, prefill_hash: str,
                        version: int = 1, options: TenantOptions = ()) -> bytes:
    """The PDF of stored values without the schema check (values a later schema refuses)."""
    return fill(values, record_id=record_id, prefill_hash=prefill_hash, version=version,
                tenant_options=options).pdf
