"""The one-way import rules of docs/architecture.md, enforced.

* Each contract of ``.importlinter`` (import-linter, on the real import graph of
  ``sharewise.plugin``/``forms``/``tasks``/``config``, imports inside functions included) is one
  test, so a failure names the contract and ``lint-imports`` prints the offending import chain.
* No module imports the design card's folders by their bare top-level names (``plugin``,
  ``forms``, ``tasks``, ``config``): they exist only as ``sharewise.*`` once installed.
"""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGE_DIRS = ("plugin", "forms", "tasks", "config")
BARE_NAMES = frozenset(PACKAGE_DIRS)
SCANNED = (*PACKAGE_DIRS, "tests", "bench")


def _contract_ids() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return [s[len(prefix):] for s in parser.sections() if s.startswith(prefix)]


def test_config_has_the_documented_contracts():
    assert set(_contract_ids()) >= {
        "forms-standalone", "plugin-not-tasks", "build-tools", "forms-layers", "plugin-layers",
        "no-cycles",
    }


@pytest.mark.parametrize("contract", _contract_ids())
def test_import_contract(contract):
    # --no-cache: nothing written into the checkout (import-linter's cache dir is cwd-relative)
    proc = subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--contract", contract, str(CONFIG)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    report = proc.stdout[proc.stdout.find("Contracts"):] + proc.stderr  # without the banner
    assert proc.returncode == 0, report
    assert " KEPT" in proc.stdout, report


def _sources() -> list[Path]:
    return sorted(p for d in SCANNED for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _is_project_module(dotted: str) -> bool:
    """``plugin.wsgi`` names a module of this project (a file or package under plugin/)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


#: calls whose first argument names a module to import (or an attribute path in one)
_IMPORTING_CALLS = {"import_module", "__import__", "find_spec", "patch", "setattr", "delattr",
                    "files"}


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def bare_imports(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """``(line, name)`` of every import of a bare top-level project name in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.split(".")[0] in BARE_NAMES]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.split(".")[0] in BARE_NAMES:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and _call_name(node) in _IMPORTING_CALLS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                text = arg.value.split(":")[0]
                parts = text.split(".")
                if parts[0] in BARE_NAMES and any(
                    _is_project_module(".".join(parts[:n])) for n in range(1, len(parts) + 1)
                ):
                    found.append((node.lineno, arg.value))
    return found


def test_bare_import_detector_itself():
    src = (
        "import plugin.app\nfrom forms import spec\nfrom tasks.worker import x\nimport config\n"
        "import importlib\nimportlib.import_module('plugin.wsgi')\n"
        "mock.patch('forms.reader.read_pdf')\n"
        "from sharewise.plugin import app\nimport sharewise.forms.spec\n"
        "SEND = 'tasks.delivery.send'\nimport pluginbase\n"
    )
    assert [name for _, name in bare_imports(src)] == [
        "plugin.app", "forms", "tasks.worker", "config", "plugin.wsgi", "forms.reader.read_pdf",
    ]


def test_no_module_imports_the_bare_top_level_names():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}"
                 for path in _sources()
                 for line, name in bare_imports(path.read_text(), str(path))]
    assert not offenders, "import these as sharewise.<name>:\n" + "\n".join(offenders)
