"""The README read the way its tests need it: the walk-through's marked code blocks, its pictures,
and the JSON it shows.

* :func:`marked_blocks`: each fenced code block preceded by an HTML comment
  ``<!-- walkthrough: NAME -->`` (invisible to readers), by ``NAME``, dedented as a reader
  copies it out of its list item.
* :func:`images`: every ``![alt](docs/img/...)`` picture, as ``(alt, path)``.
* :func:`demo_answer`: the JSON answer ``sharewise demo`` printed.
* :data:`SCREENSHOTS`: the pictures ``tests/plugin/test_readme_screenshots.py`` makes from the
  demo, with the alt text the README must give each (the generator and the README share it).
* :func:`shown_json` / :func:`matches`: JSON as the README shows it, with ``...`` standing for
  "anything" (a whole value, the rest of a list) or for the rest of a string (``"SR-..."``), and
  a check of a real answer against it. :func:`key_shape`: a list of keys as the README writes it
  in prose (``{"record_id", "status", "missing": [{"field", "rule"}]}``) as the same kind of
  shape, every value "anything".
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_MARKER = re.compile(r"^[ \t]*<!--\s*walkthrough:\s*(?P<name>[\w -]+?)\s*-->[ \t]*\n"
                     r"(?:[ \t]*\n)*"
                     r"(?P<indent>[ \t]*)```[\w-]*[ \t]*\n(?P<body>.*?)^(?P=indent)```",
                     re.MULTILINE | re.DOTALL)
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<path>docs/img/[^)\s]+)\)")


def marked_blocks(text: str) -> dict[str, str]:
    """``{name: code}`` of the blocks marked ``<!-- walkthrough: name -->``, in README order.
    A marker not followed by a fenced block, or a name used twice, is an error."""
    found: dict[str, str] = {}
    for m in _MARKER.finditer(text):
        name = m["name"]
        assert name not in found, f"walkthrough marker {name!r} used twice in the README"
        found[name] = textwrap.dedent(m["body"])
    markers = re.findall(r"<!--\s*walkthrough:\s*([\w -]+?)\s*-->", text)
    assert sorted(markers) == sorted(found), (
        "a walkthrough marker is not followed by a fenced code block: "
        f"{sorted(set(markers) - set(found))}")
    return found


def images(text: str) -> list[tuple[str, str]]:
    """Every picture of ``docs/img`` the text embeds: ``(alt text, path)``."""
    return [(m["alt"], m["path"]) for m in _IMAGE.finditer(text)]


def demo_answer(stdout: str) -> dict[str, Any]:
    """The JSON answer ``sharewise demo`` printed after its ``HTTP 201`` line."""
    lines = stdout.splitlines()
    assert "HTTP 201" in lines, stdout
    start = lines.index("HTTP 201") + 1
    return json.loads("\n".join(lines[start:lines.index("", start)]))


@dataclass(frozen=True)
class Screenshot:
    """One README picture: its file under ``docs/img``, its alt text, the viewport it is taken
    in (the PNG's width; its height too unless the whole page is captured)."""

    file: str
    alt: str
    width: int
    height: int
    full_page: bool = False

    @property
    def path(self) -> str:
        return f"docs/img/{self.file}"


#: The README's pictures, all made from ``sharewise serve`` + ``sharewise demo`` (tenant
#: ``demo``) by tests/plugin/test_readme_screenshots.py.
SCREENSHOTS = (
    Screenshot("practitioner-page.png",
               "The demo's practitioner page as first opened: the case reference, the due "
               "date, the download button, the online form and the upload form",
               1000, 900, full_page=True),
    Screenshot("practitioner-page-incomplete.png",
               "The practitioner page after an incomplete upload: what is missing, by golden "
               "rule", 1000, 1300),
    Screenshot("online-form.png", "The online form, at its first section", 1000, 900),
    Screenshot("admin-overview.png",
               "The overview of the demo's records: one waiting, one started", 1200, 640),
)

ANY = object()  # what "..." stands for in a value's place


class _Prefix(str):
    """A string the README shows as ``"start...end"``: any string with that start and end."""


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        if value == "\0ANY":
            return ANY
        if "..." in value:
            return _Prefix(value)
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def shown_json(text: str) -> Any:
    """JSON as the README shows it: ``...`` outside a string means any value (at the end of a
    list: any further items); inside one, any characters."""
    out, in_string, i = [], False, 0
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("...", i):
            out.append('"\\u0000ANY"')
            i += 2
        else:
            out.append(ch)
        i += 1
    return _decode(json.loads("".join(out)))


class _Each(list):
    """A list of any length whose every item matches the one item shown."""


def _each(shape: Any) -> Any:
    if isinstance(shape, list):
        assert len(shape) == 1, f"a list of keys shows one item: {shape!r}"
        return _Each([_each(shape[0])])
    if isinstance(shape, dict):
        return {k: _each(v) for k, v in shape.items()}
    return shape


def key_shape(text: str) -> Any:
    """``{"a", "b": [{"c"}]}`` (keys only, as the README's prose lists them) as a shape whose
    every leaf is "anything" and whose lists may hold any number of such items."""
    return _each(shown_json(re.sub(r'"(\w+)"(?=\s*[,}])', r'"\1": ...', text)))


def matches(shown: Any, actual: Any, where: str = "$") -> list[str]:
    """How ``actual`` differs from ``shown`` (empty: it matches). Objects must have exactly
    the keys shown, in that order."""
    if shown is ANY:
        return []
    if isinstance(shown, _Prefix):
        start, _, end = shown.partition("...")
        ok = isinstance(actual, str) and actual.startswith(start) and actual.endswith(end)
        return [] if ok else [f"{where}: {actual!r} is not {shown!r}"]
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        if list(shown) != list(actual):
            return [f"{where}: keys {list(actual)}, the README shows {list(shown)}"]
        return [p for k in shown for p in matches(shown[k], actual[k], f"{where}.{k}")]
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: {actual!r} is not a list"]
        if isinstance(shown, _Each):
            return [p for i, a in enumerate(actual) for p in matches(shown[0], a, f"{where}[{i}]")]
        more = bool(shown) and shown[-1] is ANY
        items = shown[:-1] if more else shown
        if len(actual) < len(items) or (not more and len(actual) != len(items)):
            return [f"{where}: {len(actual)} items, the README shows {len(items)}"
                    f"{' or more' if more else ''}"]
        return [p for i, s in enumerate(items) for p in matches(s, actual[i], f"{where}[{i}]")]
    return [] if shown == actual else [f"{where}: {actual!r}, the README shows {shown!r}"]
