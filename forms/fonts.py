"""The Unicode font of the form's fields: DejaVu Sans, embedded in the template.

Build time (``python -m sharewise.forms.template``) reads DejaVu Sans from the Debian package
``fonts-dejavu-core`` (:data:`DEJAVU_DIR`), subsets it with fontTools to the scripts the form
supports (:data:`SUBSET_RANGES`: Latin with Latin Extended A/B and Additional, Greek, Cyrillic,
combining accents, general punctuation, currency and letter-like symbols) and embeds it in
``forms/decision_record.pdf`` as a Type0 / CIDFontType2 font with Identity-H encoding, a ``/W``
widths array and a ``/ToUnicode`` CMap (so text in filled fields can be extracted and searched).

Run time never reads ``/usr/share``: :func:`field_font` extracts the embedded font program
(``FontFile2``) from the committed template once per process and parses it with fontTools for
the character map, advance widths and line metrics that prefill needs to draw appearance
streams. Glyph ids of the embedded subset are the CIDs written in content streams.

Limits: no shaping (no ligatures, kerning or mark positioning; combining accents are drawn
with their own advance, so text is NFC-normalised before drawing), left-to-right scripts only.
A character outside the subset is drawn as ``?`` and reported by :meth:`FieldFont.encode`.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fontTools import subset as ft_subset
from fontTools.ttLib import TTFont
from pypdf import PdfReader

from sharewise.forms.templatefile import TEMPLATE_PATH

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
REGULAR_TTF = DEJAVU_DIR / "DejaVuSans.ttf"
BOLD_TTF = DEJAVU_DIR / "DejaVuSans-Bold.ttf"

#: Name of the field font in ``/AcroForm /DR /Font`` and in every text field's ``/DA``.
FONT_RESOURCE = "SWSans"
#: PostScript name of the embedded subset (the six-letter tag marks a subset).
SUBSET_NAME = "SWFORM+DejaVuSans"

#: Code point ranges kept in the embedded subset (inclusive).
SUBSET_RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x00FF),  # Latin-1 Supplement
    (0x0100, 0x017F),  # Latin Extended-A
    (0x0180, 0x024F),  # Latin Extended-B
    (0x02B0, 0x02FF),  # spacing modifier letters (ʼ, ˈ ...)
    (0x0300, 0x036F),  # combining diacritical marks
    (0x0370, 0x03FF),  # Greek and Coptic
    (0x0400, 0x04FF),  # Cyrillic
    (0x0500, 0x052F),  # Cyrillic Supplement
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Welsh ẁ ẃ ẅ ỳ, Vietnamese)
    (0x2000, 0x206F),  # General Punctuation
    (0x20A0, 0x20CF),  # currency symbols
    (0x2100, 0x214F),  # letter-like symbols (№, ™)
    (0xFFFD, 0xFFFD),  # replacement character
)

#: What is drawn in place of a character the font cannot show.
REPLACEMENT = "?"


def subset_font_program(path: Path = REGULAR_TTF) -> bytes:
    """Subset a TrueType font to :data:`SUBSET_RANGES` (build time only; reads ``path``).

    Hinting and OpenType layout tables are dropped (appearance streams are drawn without
    shaping); ``cmap``, ``name``, ``post`` and ``OS/2`` are kept so the program can be parsed
    again at run time and registered with reportlab.
    """
    font = TTFont(str(path), recalcTimestamp=False)
    options = ft_subset.Options()
    options.hinting = False
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM", "BASE", "MATH"]
    options.notdef_outline = True
    options.recalc_timestamp = False
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6]
    options.glyph_names = False
    subsetter = ft_subset.Subsetter(options=options)
    unicodes = [cp for lo, hi in SUBSET_RANGES for cp in range(lo, hi + 1)]
    subsetter.populate(unicodes=unicodes)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


@dataclass(frozen=True)
class Encoded:
    """Text made ready for an Identity-H content stream."""

    text: str  # the NFC text actually drawn (missing characters replaced)
    hex: str  # glyph ids, four hex digits each, for ``<...> Tj``
    width: float  # advance width at size 1000 (sum of glyph widths in font units / 1000 em)
    missing: tuple[str, ...]  # distinct characters the font cannot show, in order of appearance


class FieldFont:
    """A parsed embedded TrueType program: character map, widths and metrics per 1000 em."""

    def __init__(self, program: bytes) -> None:
        """Parse ``program`` (a TrueType font file's bytes)."""
        self.program = program
        tt = TTFont(io.BytesIO(program))
        scale = 1000.0 / tt["head"].unitsPerEm
        order = tt.getGlyphOrder()
        gid_of = {name: i for i, name in enumerate(order)}
        self.cmap: dict[int, int] = {
            cp: gid_of[name] for cp, name in tt.getBestCmap().items() if name in gid_of
        }
        metrics = tt["hmtx"].metrics
        self.widths: list[int] = [round(metrics[name][0] * scale) for name in order]
        hhea = tt["hhea"]
        self.ascent = round(hhea.ascent * scale)
        self.descent = round(hhea.descent * scale)  # negative
        head = tt["head"]
        self.bbox = tuple(
            round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)
        )
        os2 = tt["OS/2"]
        self.cap_height = round(getattr(os2, "sCapHeight", 0) * scale) or self.ascent
        self.num_glyphs = len(order)
        self._replacement_gid = self.cmap.get(ord(REPLACEMENT), 0)
        # hex of each mapped code point, precomputed: encoding is the hot path of prefill
        self._hex: dict[str, str] = {chr(cp): f"{gid:04X}" for cp, gid in self.cmap.items()}
        self._width: dict[str, int] = {chr(cp): self.widths[gid] for cp, gid in self.cmap.items()}

    def has(self, char: str) -> bool:
        """Whether the font can show ``char``."""
        return char in self._hex

    def unicode_map(self) -> dict[int, int]:
        """Glyph id -> code point (the lowest code point per glyph), for the ToUnicode CMap."""
        out: dict[int, int] = {}
        for cp, gid in sorted(self.cmap.items()):
            out.setdefault(gid, cp)
        return out

    def encode(self, text: str) -> Encoded:
        """Map ``text`` (NFC-normalised first) to glyph ids; unknown characters become ``?``.

        Control characters other than tab are dropped; a tab is drawn as a space.
        """
        text = unicodedata.normalize("NFC", text).replace("\t", " ")
        hexes: list[str] = []
        width = 0
        drawn: list[str] = []
        missing: list[str] = []
        hex_of, width_of = self._hex, self._width
        for ch in text:
            h = hex_of.get(ch)
            if h is None:
                if unicodedata.category(ch) in ("Cc", "Cf"):
                    continue
                if ch not in missing:
                    missing.append(ch)
                ch = REPLACEMENT
                h = hex_of[ch]
            hexes.append(h)
            width += width_of[ch]
            drawn.append(ch)
        return Encoded("".join(drawn), "".join(hexes), width / 1000.0, tuple(missing))

    def glyph_hex(self, text: str) -> str:
        """Identity-H hex of text that :meth:`encode` has already made drawable."""
        hex_of = self._hex
        return "".join(hex_of[ch] for ch in text)

    def width(self, text: str, size: float) -> float:
        """Advance width of ``text`` (assumed already encodable) at ``size`` points."""
        try:
            total = sum(map(self._width.__getitem__, text))
        except KeyError:  # a character the font lacks is drawn as the replacement glyph
            get, fallback = self._width.get, self._width[REPLACEMENT]
            total = sum(get(ch, fallback) for ch in text)
        return total * size / 1000.0

    def widths_array(self, gids: Iterable[int] | None = None) -> list:
        """The CIDFont ``/W`` array (``[first [w1 w2 ...]]`` runs) for ``gids`` (default all)."""
        ids = sorted(set(gids) if gids is not None else range(self.num_glyphs))
        out: list = []
        run: list[int] = []
        start = prev = -2
        for gid in ids:
            if gid != prev + 1 and run:
                out += [start, run]
                run = []
            if not run:
                start = gid
            run.append(self.widths[gid])
            prev = gid
        if run:
            out += [start, run]
        return out


def missing_warning(field_name: str, missing: Iterable[str]) -> str:
    """The warning for characters a field's value uses that the font cannot show.

    Names the field and the code points only (never the value itself).
    """
    chars = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing)
    return (
        f"{field_name}: the form's font cannot show {chars}; "
        f"it appears as {REPLACEMENT!r} on the form"
    )


def _program_from_template(path: Path) -> bytes:
    reader = PdfReader(str(path))
    acro = reader.trailer["/Root"]["/AcroForm"]
    font = acro["/DR"]["/Font"][f"/{FONT_RESOURCE}"].get_object()
    descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
    return descriptor["/FontFile2"].get_object().get_data()


@cache
def field_font(template: Path | None = None) -> FieldFont:
    """The field font, extracted from the committed template (parsed once per process)."""
    return FieldFont(_program_from_template(template or TEMPLATE_PATH))
