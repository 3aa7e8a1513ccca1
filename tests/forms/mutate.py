"""Seeded mutations of real filled decision forms, for the read-back fuzz.

The base forms (:func:`build_bases`) are the prefilled form for
:data:`tests.forms.conftest.SAMPLE_PREFILL`, completed through PDFium's form-fill API the way
Chrome does (:func:`tests.forms.viewers.fill_with_pdfium`, :data:`~tests.forms.viewers.ENTERED`)
and saved four ways:

* ``incremental``: an incremental update (as Chrome saves);
* ``rewritten``: a full rewrite (``FPDF_NO_INCREMENTAL``);
* ``object_streams``: that rewrite saved again by qpdf with compressed object streams and a
  cross-reference stream (as Acrobat and many tools save);
* ``object_streams_plain``: the same with uncompressed streams (``qpdf --object-streams=generate
  --compress-streams=n``), so that mutations reach the objects inside the object streams and
  the entries of the binary cross-reference stream.

PDFium writes a random second ``/ID`` string on every save; :func:`pin_id` replaces it with
the first one (same length, so no offset moves), which makes the bases byte-for-byte the same
on every run with the same PDFium, pypdf and qpdf.

A case is a seed: :func:`make_case` derives from it, with its own :class:`random.Random`, the
base and 1 to 4 stacked mutations from :data:`OPERATORS` (bit flips, bytes replaced with
interesting values, slices deleted, duplicated or swapped, truncation, PDF tokens inserted,
numbers changed inside ``N G R`` references, cross-reference entries, ``startxref`` and
``/Prev``, and other numbers such as ``/Length``, ``/Size`` or an object stream's offsets).
Most positions are chosen near the file's structure (object headers, dictionaries, names,
references, cross-reference entries) rather than inside compressed stream data, where a
change only ever breaks a Flate stream. When the mutations moved bytes, 8 cases in 10 then get
their cross-reference offsets moved with them (``repair_offsets``), so that the parser reaches
the changed objects the normal way; the others go through pypdf's rebuilding of a broken
cross-reference. The same seed and bases always give the same bytes.

:func:`read_case` reads a case the way the service does (:func:`sharewise.forms.sandbox.
read_upload`, in this process or in the sandbox) and says whether the reader ended it cleanly:
an accepted :class:`~sharewise.forms.reader.ReadBack` of the right shape, or an
:class:`~sharewise.forms.reader.UploadRejected` with a documented code and one of the reader's
own messages, within the sandbox's time bound (:data:`TIME_BOUND`).

:func:`init_worker` and :func:`run_seeds` run cases in a pool of worker processes (the suite
and ``bench/fuzz_readback.py`` use both cores that way); there a watchdog stops a case that runs
far past the bound and reports it as a hang, with its seed.
"""

from __future__ import annotations

import gc
import inspect
import io
import logging
import random
import re
import resource
import signal
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from sharewise.forms.prefill import normalise_prefill, prefill
from sharewise.forms.reader import PDF_HEADER, ReadBack, UploadRejected
from sharewise.forms.sandbox import GC_THRESHOLD, read_upload
from sharewise.forms.spec import load_spec

__all__ = [
    "ACCEPTED",
    "FAILURE",
    "KNOWN_CODES",
    "OPERATORS",
    "TIME_BOUND",
    "Base",
    "Case",
    "Outcome",
    "Record",
    "build_bases",
    "index_bases",
    "init_worker",
    "make_case",
    "pin_id",
    "read_case",
    "run_seeds",
    "sample_record",
    "worker_pool",
]

#: The sandbox's time bound for one upload (``read_upload``'s default ``timeout``, seconds). The
#: in-process reader has no kill, so a case that takes longer is a finding.
TIME_BOUND: float = inspect.signature(read_upload).parameters["timeout"].default

#: The refusal codes :mod:`sharewise.forms.reader` documents (its module docstring's table).
KNOWN_CODES = frozenset({
    "empty", "too_large", "not_pdf", "malformed", "too_complex", "encrypted", "xfa",
    "active_content", "wrong_form", "wrong_record", "tampered",
})
ACCEPTED = "accepted"
FAILURE = "failure"

# ------------------------------------------------------------------ the base forms


@dataclass(frozen=True)
class Record:
    """The record the base forms were prefilled for."""

    record_id: str
    expected: dict[str, Any]


def sample_record() -> Record:
    """The record of :data:`tests.forms.conftest.SAMPLE_PREFILL`."""
    from tests.forms.conftest import SAMPLE_PREFILL

    expected = normalise_prefill(dict(SAMPLE_PREFILL))
    return Record(record_id=expected["record_id"], expected=expected)


_ID = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*\]")


def pin_id(pdf: bytes) -> bytes:
    """``pdf`` with each trailer ``/ID``'s second string made the first (when both have the
    same length, so no byte moves): the one part of a PDFium or qpdf save that is random."""

    def same(match: re.Match[bytes]) -> bytes:
        first, second = match.group(1), match.group(2)
        if len(first) != len(second):
            return match.group(0)
        whole = match.group(0)
        at = match.start(2) - match.start(0)
        return whole[:at] + first + whole[at + len(second):]

    return _ID.sub(same, pdf)


def _object_streams(pdf: bytes, *, compress: bool) -> bytes:
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        out = io.BytesIO()
        doc.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate,
                 compress_streams=compress)
        return out.getvalue()


def build_bases() -> dict[str, bytes]:
    """The four real filled forms the fuzz mutates (see the module docstring), by name."""
    from tests.forms.conftest import SAMPLE_PREFILL
    from tests.forms.viewers import ENTERED, fill_with_pdfium

    prefilled = prefill(dict(SAMPLE_PREFILL)).pdf
    rewritten = pin_id(fill_with_pdfium(prefilled, ENTERED, incremental=False))
    return {
        "incremental": pin_id(fill_with_pdfium(prefilled, ENTERED, incremental=True)),
        "rewritten": rewritten,
        "object_streams": pin_id(_object_streams(rewritten, compress=True)),
        "object_streams_plain": pin_id(_object_streams(rewritten, compress=False)),
    }


# ------------------------------------------------------------------ where to mutate

_STRUCTURE = re.compile(
    rb"\d+\s+\d+\s+(?:obj|R)\b|<<|>>|\[|\]|/[A-Za-z][A-Za-z0-9]*|endobj|\bxref\b|trailer"
    rb"|startxref|\d{10} \d{5} [nf]|\(|<[0-9A-Fa-f]"
)
_KEYS = re.compile(
    rb"/(?:Root|Info|AcroForm|Fields|Kids|Parent|T|V|AS|Opt|FT|Ff|Pages|Annots|Count|Type"
    rb"|Prev|Size|Length|Filter|First|N|W|Index|XRefStm|SharewiseRecord|SharewiseSchema)\b"
)
_REFERENCE = re.compile(rb"(\d+)(\s+)(\d+)(\s+R)\b")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])")
_AFTER_KEYWORD = re.compile(rb"(startxref|/Prev)(\s+)(\d+)")
_NUMBER = re.compile(rb"[-+]?\d+")
_STREAM = re.compile(rb"(?<!end)stream\r?\n")


@dataclass(frozen=True)
class Base:
    """One base form and where its structure is (offsets, computed once)."""

    name: str
    data: bytes
    hot: tuple[int, ...]
    keys: tuple[int, ...]  # the names the reader and the parser follow (:data:`_KEYS`)
    references: tuple[int, ...]
    xref_entries: tuple[int, ...]
    pointers: tuple[int, ...]  # ``startxref N`` and ``/Prev N``

    @classmethod
    def of(cls, name: str, data: bytes) -> Base:
        """Index ``data``: positions inside compressed (filtered) stream data are left out."""
        opaque: list[tuple[int, int]] = []
        for match in _STREAM.finditer(data):
            end = data.find(b"endstream", match.end())
            if end < 0:
                continue
            head = data.rfind(b"obj", 0, match.start())
            if b"/Filter" in data[head:match.start()]:
                opaque.append((match.end(), end))
        starts = [s for s, _ in opaque]

        def visible(pos: int) -> bool:
            i = bisect_right(starts, pos) - 1
            return i < 0 or pos >= opaque[i][1]

        def where(pattern: re.Pattern[bytes]) -> tuple[int, ...]:
            return tuple(m.start() for m in pattern.finditer(data) if visible(m.start()))

        return cls(
            name=name, data=data, hot=where(_STRUCTURE), keys=where(_KEYS),
            references=where(_REFERENCE), xref_entries=where(_XREF_ENTRY),
            pointers=where(_AFTER_KEYWORD),
        )


@dataclass(frozen=True)
class Case:
    """One fuzz case: the seed, the base it mutated, what was done, and the bytes."""

    seed: int
    base: str
    mutations: tuple[str, ...]
    data: bytes

    def describe(self) -> str:
        """One line naming the case (enough to rebuild it: seed and base)."""
        return f"seed {self.seed} ({self.base}: {'; '.join(self.mutations)})"


@dataclass
class _State:
    """A case being built: the current bytes and the edits so far (to follow base offsets)."""

    rng: random.Random
    base: Base
    data: bytes
    edits: list[tuple[int, int]] = field(default_factory=list)

    def replace(self, start: int, end: int, new: bytes) -> None:
        self.data = self.data[:start] + new + self.data[end:]
        delta = len(new) - (end - start)
        if delta:
            self.edits.append((end if delta < 0 else start, delta))

    def follow(self, pos: int) -> int:
        """Where a base offset is now."""
        for at, delta in self.edits:
            if pos >= at:
                pos += delta
        return max(0, min(pos, len(self.data)))

    def near(self, offsets: tuple[int, ...]) -> int:
        """A position: mostly one of ``offsets`` of the base (followed), else anywhere after
        the header (rarely inside it)."""
        roll = self.rng.random()
        if offsets and roll < 0.8:
            return self.follow(self.rng.choice(offsets))
        if roll < 0.99:
            return self.rng.randrange(len(PDF_HEADER), max(len(PDF_HEADER) + 1, len(self.data)))
        return self.rng.randrange(0, max(1, len(self.data)))

    def spot(self) -> int:
        """A position for a byte-level mutation: often at a name the reader follows, else
        :meth:`near` the structure."""
        if self.base.keys and self.rng.random() < 0.4:
            return self.follow(self.rng.choice(self.base.keys))
        return self.near(self.base.hot)

    def span(self) -> int:
        """A slice length: mostly short, sometimes kilobytes."""
        return self.rng.randint(1, self.rng.choice((1, 2, 4, 8, 16, 64, 256, 1024, 4096)))

    def object_number(self, pos: int) -> int:
        """The number of the object whose body holds ``pos`` (1 if none is found)."""
        head = self.data.rfind(b" obj", 0, pos)
        match = re.search(rb"(\d+)\s+\d+$", self.data[max(0, head - 24):max(0, head)])
        return int(match.group(1)) if match else 1


# ------------------------------------------------------------------ the operators

INTERESTING_BYTES = b"\x00\xff0123456789()<>/[] \n\r%"
HUGE = (b"99999999999", b"2147483648", b"4294967296", b"9223372036854775808", b"9" * 40)
NEGATIVE = (b"-1", b"-2147483649", b"-99999999999", b"-0")

#: Tokens inserted whole (``{self}`` is the number of the object the position is in).
TOKENS: tuple[bytes, ...] = (
    b"R", b"0 R", b"obj", b"endobj", b"stream", b"endstream", b"xref", b"trailer", b"startxref",
    b"%%EOF", b"null", b"true", b"0.5", b"1e308", b"1.2.3", b"<<", b">>", b"[", b"]", b"(", b")",
    b"<", b">", b"/", b"<FEFF", b"\\", *HUGE, *NEGATIVE,
    b"/Kids [1 0 R]", b"/Parent 1 0 R", b"/Kids [{self} 0 R]", b"/Parent {self} 0 R",
    b"{self} 0 R", b"/Fields [{self} 0 R]", b"/V {self} 0 R", b"/Annots [{self} 0 R]",
    b"/Next {self} 0 R", b"/Kids [{self} 0 R {self} 0 R]", b"/Kids 99999999999 0 R",
    b"/Length 99999999999", b"/Length -1", b"/Length {self} 0 R", b"/Filter /FlateDecode",
    b"/Filter [/FlateDecode /LZWDecode /ASCIIHexDecode]", b"/DecodeParms << /Predictor 15 >>",
    b"/Type /ObjStm /N 99999999999 /First -1", b"/Prev 0", b"/Prev -1", b"/Size 99999999999",
    b"/XRefStm 0", b"/Opt [{self} 0 R]", b"/AS /", b"/V /", b"/T ()", b"/T (record_id)",
    b"/FT /Btn", b"/Ff 99999999999", b"/AA << /K << /S /JavaScript /JS (1) >> >>",
    b"/A << /S /URI /URI (x) /Next {self} 0 R >>", b"/Encrypt {self} 0 R", b"/XFA []",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", b"<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<",
)


def _bit_flip(st: _State) -> str:
    pos = st.spot()
    flips = st.rng.randint(1, 8)
    data = bytearray(st.data)
    for _ in range(flips):
        at = min(len(data) - 1, pos + st.rng.randrange(8))
        if at >= 0:
            data[at] ^= 1 << st.rng.randrange(8)
    st.data = bytes(data)
    return f"bit_flip x{flips} @{pos}"


def _interesting_bytes(st: _State) -> str:
    pos = st.spot()
    count = st.rng.randint(1, 8)
    new = bytes(st.rng.choice(INTERESTING_BYTES) for _ in range(count))
    st.replace(pos, min(len(st.data), pos + count), new)
    return f"replace {new!r} @{pos}"


def _delete_slice(st: _State) -> str:
    pos = st.spot()
    size = st.span()
    st.replace(pos, min(len(st.data), pos + size), b"")
    return f"delete {size} @{pos}"


def _duplicate_slice(st: _State) -> str:
    pos = st.spot()
    size = st.span()
    chunk = st.data[pos:pos + size]
    to = st.spot()
    st.replace(to, to, chunk)
    return f"duplicate {len(chunk)} @{pos} to @{to}"


def _swap_slices(st: _State) -> str:
    a, b = sorted((st.spot(), st.spot()))
    size = min(st.span(), b - a)
    if size <= 0:
        return _delete_slice(st)
    size_b = min(st.span(), len(st.data) - b)
    first, second = st.data[a:a + size], st.data[b:b + size_b]
    st.data = st.data[:a] + second + st.data[a + size:b] + first + st.data[b + size_b:]
    moved = size_b - size
    if moved:  # the bytes between the slices moved; those after both did not
        st.edits += [(a + size, moved), (b + size_b + moved, -moved)]
    return f"swap {size} @{a} with {size_b} @{b}"


def _truncate(st: _State) -> str:
    pos = st.spot()
    tail = st.rng.choice(("none", "eof", "trailer"))
    cut = st.data[:pos]
    if tail == "eof":
        cut += b"\n%%EOF\n"
    elif tail == "trailer":  # keep the real end: startxref now points past the end
        start = st.data.rfind(b"startxref")
        cut += st.data[start:] if start >= 0 else b"\n%%EOF\n"
    st.data = cut
    return f"truncate @{pos} ({tail})"


def _insert_token(st: _State) -> str:
    pos = st.spot()
    token = st.rng.choice(TOKENS).replace(b"{self}", b"%d" % st.object_number(pos))
    new = b" " + token + b" "
    if st.rng.random() < 0.5:  # instead of the bytes there, or in front of them
        st.replace(pos, min(len(st.data), pos + len(new)), new)
    else:
        st.replace(pos, pos, new)
    return f"insert {token!r} @{pos}"


def _another_number(st: _State, number: int, pos: int) -> bytes:
    """A wrong value for a number the parser follows."""
    rng = st.rng
    choice = rng.randrange(10)
    if choice == 0:
        return b"%d" % (number + rng.randint(1, 3))
    if choice == 1:
        return b"%d" % max(0, number - rng.randint(1, 3))
    if choice == 2:
        return b"0"
    if choice == 3:
        return rng.choice(HUGE)
    if choice == 4:
        return rng.choice(NEGATIVE)
    if choice == 5:
        return b"%d" % (number * 2 + 1)
    if choice == 6:
        return b"%d" % st.object_number(pos)  # the object it is in: a self reference
    if choice == 7:
        return b"%d" % rng.randrange(0, max(1, len(st.data)))
    if choice == 8:
        return b"%d" % rng.randrange(0, 400)
    return b"%d" % (number + rng.randint(-64, 64))


def _tweak_reference(st: _State) -> str:
    pos = st.near(st.base.references)
    match = _REFERENCE.search(st.data, pos, pos + 4096) or _REFERENCE.search(st.data, 0)
    if match is None:
        return _insert_token(st)
    group = 1 if st.rng.random() < 0.8 else 3  # the object number, sometimes the generation
    old = int(match.group(group))
    if group == 3:
        new = st.rng.choice((b"1", b"65535", b"99999", b"-1", b"%d" % (old + 1)))
    else:
        new = _another_number(st, old, match.start())
    st.replace(match.start(group), match.end(group), new)
    return f"reference {match.group(0)!r} {'number' if group == 1 else 'generation'} -> {new!r}"


def _xref_offset(st: _State, old: int) -> bytes:
    rng = st.rng
    choice = rng.randrange(6)
    if choice == 0:
        return b"%d" % max(0, old + rng.randint(-64, 64))
    if choice == 1:  # another object's offset, or a keyword's
        keyword = rng.choice((b" obj", b"xref", b"trailer", b"stream", b"<<"))
        at = st.data.find(keyword, rng.randrange(max(1, len(st.data))))
        return b"%d" % max(0, at)
    if choice == 2:
        return b"%d" % (len(st.data) + rng.randint(0, 64))
    return _another_number(st, old, 0)


def _tweak_xref_table(st: _State) -> str:
    pos = st.near(st.base.xref_entries)
    match = _XREF_ENTRY.search(st.data, pos, pos + 4096)
    if match is None:
        return _tweak_pointer(st)
    roll = st.rng.random()
    if roll < 0.7:
        new = b"%010d" % int(_xref_offset(st, int(match.group(1))))
        group = 1
    elif roll < 0.85:
        new, group = st.rng.choice((b"65535", b"00001", b"99999")), 2
    else:
        new, group = (b"f" if match.group(3) == b"n" else b"n"), 3
    st.replace(match.start(group), match.end(group), new)
    return f"xref entry {match.group(0)!r} -> {new!r}"


def _tweak_pointer(st: _State) -> str:
    pos = st.near(st.base.pointers)
    match = _AFTER_KEYWORD.search(st.data, pos) or _AFTER_KEYWORD.search(st.data, 0)
    if match is None:
        return _tweak_number(st)
    new = _xref_offset(st, int(match.group(3)))
    st.replace(match.start(3), match.end(3), new)
    return f"{match.group(1).decode()} {int(match.group(3))} -> {new.decode()}"


_XREF_STREAM = re.compile(rb"/Type\s*/XRef\b")
_W = re.compile(rb"/W\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s*\]")


def _tweak_xref_stream(st: _State) -> str:
    """Change one entry of an uncompressed cross-reference stream (type, offset or object
    stream, index or generation)."""
    head = _XREF_STREAM.search(st.data)
    stream = _STREAM.search(st.data, head.end()) if head else None
    widths = _W.search(st.data, head.end(), stream.start()) if head and stream else None
    if widths is None or stream is None or b"/Filter" in st.data[head.start():stream.start()]:
        return _tweak_xref_table(st)
    w = [int(x) for x in widths.groups()]
    end = st.data.find(b"endstream", stream.end())
    rows = (end - stream.end()) // max(1, sum(w))
    if rows <= 0 or sum(w) == 0:
        return _tweak_xref_table(st)
    row = st.rng.randrange(rows)
    column = st.rng.randrange(3)
    if w[column] == 0:
        column = 1
    at = stream.end() + row * sum(w) + sum(w[:column])
    old = int.from_bytes(st.data[at:at + w[column]], "big")
    if column == 0:
        value = st.rng.choice((0, 1, 2, 3, 255))
    else:
        value = int(_xref_offset(st, old)) % (1 << (8 * w[column]))
    st.replace(at, at + w[column], value.to_bytes(w[column], "big"))
    return f"xref stream row {row} field {column} {old} -> {value}"


def _tweak_number(st: _State) -> str:
    pos = st.spot()
    match = _NUMBER.search(st.data, pos, pos + 256)
    if match is None:
        return _bit_flip(st)
    new = _another_number(st, int(match.group(0)), match.start())
    st.replace(match.start(), match.end(), new)
    return f"number {match.group(0)!r} -> {new!r}"


def _repair_offsets(st: _State) -> str:
    """Move the cross-reference offsets (table entries, uncompressed stream entries,
    ``startxref``, ``/Prev``) with the bytes the mutations inserted or deleted, so that the
    parser takes its normal path to the changed objects instead of rebuilding the
    cross-reference by scanning the file (a pointer a mutation made wrong stays wrong)."""
    moved = 0
    for pos in st.base.xref_entries:
        match = _XREF_ENTRY.match(st.data, st.follow(pos))
        if match is None:
            continue
        old = int(match.group(1))
        new = st.follow(old)
        if new != old and new < 10**10:
            st.replace(match.start(1), match.end(1), b"%010d" % new)
            moved += 1
    head = _XREF_STREAM.search(st.data)
    stream = _STREAM.search(st.data, head.end()) if head else None
    widths = _W.search(st.data, head.end(), stream.start()) if head and stream else None
    if head and stream and widths and b"/Filter" not in st.data[head.start():stream.start()]:
        w = [int(x) for x in widths.groups()]
        end = st.data.find(b"endstream", stream.end())
        data = bytearray(st.data)
        for at in range(stream.end(), end - sum(w) + 1, max(1, sum(w))):
            kind = int.from_bytes(data[at:at + w[0]], "big") if w[0] else 1
            if kind != 1 or not w[1]:
                continue
            old = int.from_bytes(data[at + w[0]:at + w[0] + w[1]], "big")
            new = st.follow(old)
            if new != old and new < 1 << (8 * w[1]):
                data[at + w[0]:at + w[0] + w[1]] = new.to_bytes(w[1], "big")
                moved += 1
        st.data = bytes(data)
    for pos in st.base.pointers:
        match = _AFTER_KEYWORD.match(st.data, st.follow(pos))
        if match is None:
            continue
        old = int(match.group(3))
        new = st.follow(old)
        if new != old:
            st.replace(match.start(3), match.end(3), b"%d" % new)
            moved += 1
    return f"repair_offsets: {moved} moved"


#: The mutation operators, with how often each is picked.
OPERATORS: dict[str, tuple[Callable[[_State], str], int]] = {
    "bit_flip": (_bit_flip, 3),
    "interesting_bytes": (_interesting_bytes, 3),
    "delete_slice": (_delete_slice, 2),
    "duplicate_slice": (_duplicate_slice, 2),
    "swap_slices": (_swap_slices, 2),
    "truncate": (_truncate, 1),
    "insert_token": (_insert_token, 4),
    "tweak_reference": (_tweak_reference, 4),
    "tweak_xref_table": (_tweak_xref_table, 2),
    "tweak_xref_stream": (_tweak_xref_stream, 1),
    "tweak_pointer": (_tweak_pointer, 2),
    "tweak_number": (_tweak_number, 3),
}
_NAMES = tuple(OPERATORS)
_WEIGHTS = tuple(weight for _, weight in OPERATORS.values())
#: How often a case whose mutations moved bytes gets its offsets repaired afterwards.
REPAIR_CHANCE = 0.8


def make_case(seed: int, bases: Mapping[str, Base]) -> Case:
    """Case ``seed``: a base (by sorted name) and 1 to 4 mutations, all from the seed (an
    operator that happened to change nothing is followed by another; both are listed)."""
    rng = random.Random(seed)
    name = rng.choice(sorted(bases))
    st = _State(rng=rng, base=bases[name], data=bases[name].data)
    done = []
    for _ in range(rng.randint(1, 4)):
        for _attempt in range(4):  # an operator that happened to change nothing: another one
            before = st.data
            operator = rng.choices(_NAMES, _WEIGHTS)[0]
            done.append(f"{operator}: {OPERATORS[operator][0](st)}")
            if st.data != before:
                break
    if st.edits and rng.random() < REPAIR_CHANCE:
        done.append(_repair_offsets(st))
    return Case(seed=seed, base=name, mutations=tuple(done), data=st.data)


# ------------------------------------------------------------------ reading a case


@dataclass(frozen=True)
class Outcome:
    """How the reader ended a case: ``kind`` is :data:`ACCEPTED`, a refusal code, or
    :data:`FAILURE` (then ``failure`` says what went wrong)."""

    kind: str
    seconds: float
    failure: str | None = None
    readback: ReadBack | None = None  # what an accepted case read
    cpu: float = 0.0  # this process's processor time for the case (seconds)


def _check_accepted(result: Any, record: Record) -> str | None:
    if not isinstance(result, ReadBack):
        return f"returned {type(result).__name__}, not a ReadBack"
    if result.record_id != record.record_id:
        return f"accepted for record {result.record_id!r}"
    if list(result.values) != list(load_spec().names):
        return "accepted without exactly the spec's fields"
    odd = [k for k, v in result.values.items() if not (v is None or isinstance(v, str | bool))]
    if odd:
        return f"accepted with non-text values for {odd}"
    return None


def _check_refusal(rejected: UploadRejected) -> str | None:
    if rejected.code not in KNOWN_CODES:
        return f"refused with unknown code {rejected.code!r}"
    # ``checked`` keeps a message only if it is one of the reader's own texts
    own = UploadRejected.checked(rejected.code, rejected.message)
    if own.code != rejected.code or own.message != rejected.message:
        return f"{rejected.code}: not one of the reader's messages: {rejected.message[:200]!r}"
    return None


def read_case(
    data: bytes, record: Record, *, isolate: bool = False, time_bound: float = TIME_BOUND
) -> Outcome:
    """Read one upload as the service does and judge the ending (see the module docstring).

    Anything other than a :class:`ReadBack` or an :class:`UploadRejected` escaping the reader
    is a failure, named by its type and text; so is a case over ``time_bound`` seconds.
    """
    started, cpu = time.perf_counter(), time.process_time()
    result = None
    try:
        result = read_upload(data, record_id=record.record_id, expected=record.expected,
                             isolate=isolate, timeout=time_bound)
    except UploadRejected as rejected:
        kind, failure = rejected.code, _check_refusal(rejected)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - that is the finding
        kind, failure = FAILURE, f"{type(exc).__module__}.{type(exc).__name__}: {exc}"[:300]
    else:
        kind, failure = ACCEPTED, _check_accepted(result, record)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if failure is None and seconds > time_bound:
        failure = f"{kind} after {seconds:.2f} s, over the {time_bound:g} s bound"
    readback = result if kind == ACCEPTED and failure is None else None
    return Outcome(FAILURE if failure else kind, seconds, failure, readback, cpu)


# ------------------------------------------------------------------ fuzz worker processes

#: A case still running after this many seconds is stopped and reported as a hang (worker
#: processes only: the alarm signal would disturb a test runner's own timer).
WATCHDOG = 3 * TIME_BOUND
#: How much more address space a fuzz worker process may map than it has when it starts (bytes).
WORKER_MEMORY = 1024 * 1024 * 1024
_worker_bases: dict[str, Base] = {}


class Hang(BaseException):
    """Raised by the watchdog in a case that ran past :data:`WATCHDOG` (not an ``Exception``:
    the reader's own handlers must not turn it into a refusal)."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang(f"still running after {WATCHDOG:g} s")


def index_bases(raw: Mapping[str, bytes]) -> dict[str, Base]:
    """:class:`Base` indexes of :func:`build_bases`'s forms."""
    return {name: Base.of(name, data) for name, data in raw.items()}


def init_worker(raw: Mapping[str, bytes]) -> None:
    """Set up a fuzz worker process (the initializer of a process pool): index the base forms
    once, keep pypdf's recovery warnings off stderr (as the sandbox worker does; the reader
    still sees them) and arm the hang watchdog's handler."""
    _worker_bases.clear()
    _worker_bases.update(index_bases(raw))
    logging.getLogger("pypdf").propagate = False
    # garbage collection as in a sandbox worker: what the process holds now (for a forked
    # worker, all of its parent's objects) is never looked at again, and a parse's garbage
    # is collected after it, outside the case's time
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)
    signal.signal(signal.SIGALRM, _alarm)
    # a bound for the shared machine, not the sandbox's (a case over it ends as too_complex,
    # as it would in the sandbox, whose bound is lower): room for this much more address
    # space than the worker (a fork of a test session, maybe a large one) maps already
    try:
        with open("/proc/self/statm", "rb") as fh:
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + WORKER_MEMORY
    if hard == resource.RLIM_INFINITY or limit <= hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_pool(raw: Mapping[str, bytes], jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` fuzz worker processes set up by :func:`init_worker`.

    They are forked, not spawned: under pytest (whose rootdir layout puts ``tests/`` first on
    ``sys.path``) a spawned child would import ``tests/concurrent.py`` instead of the standard
    library's ``concurrent`` package; a forked one has its modules already. The workers are
    started together when the first task is submitted.
    """
    return ProcessPoolExecutor(max(1, jobs), mp_context=get_context("fork"),
                               initializer=init_worker, initargs=(dict(raw),))


def run_seeds(seeds: list[int]) -> list[tuple[int, str, Outcome]]:
    """Build and read (in this process) the case of each seed: ``(seed, description,
    outcome)``. Runs in a process set up by :func:`init_worker`."""
    record = sample_record()
    results = []
    for seed in seeds:
        case = make_case(seed, _worker_bases)
        signal.setitimer(signal.ITIMER_REAL, WATCHDOG)
        try:
            try:
                outcome = read_case(case.data, record)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Hang as hang:  # the alarm came just as the case ended
            outcome = Outcome(FAILURE, WATCHDOG, f"hang: {hang}")
        results.append((seed, case.describe(), outcome))
        gc.collect()
    return results
