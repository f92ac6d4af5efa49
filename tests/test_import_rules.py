"""Which way imports go (docs/architecture.md), checked on the source: `welfare` imports neither
the HTTP side (`api`, FastAPI, Starlette) nor `notifications` nor Twilio, and no two domain
folders under `welfare/` import each other (a flow over several goes beside them, like
welfare/erasure.py).

Every import counts, the ones inside functions too: a deferred import is still a dependency,
only one taken later."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
WELFARE = ROOT / "welfare"
FORBIDDEN_IN_WELFARE = ("api", "notifications", "fastapi", "starlette", "twilio")
# The command line is an entry point (it starts the app and the worker): it may import them,
# inside its commands only, so that importing `welfare` never loads them.
ENTRY_POINT = WELFARE / "cli.py"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class Imported(NamedTuple):
    name: str  # dotted; for `from a import b` both `a` and `a.b` (b may be a module)
    deferred: bool  # inside a function: run only when it is called


def imports(source: str, module: str, *, is_package: bool = False) -> list[Imported]:
    """Every import in `source` (the text of `module`), at any depth."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[Imported] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Imported(alias.name, deferred) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.append(Imported(base, deferred))
            found.extend(Imported(f"{base}.{alias.name}", deferred) for alias in node.names)
        inside = deferred or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), deferred=False)
    return found


def _imports_of(path: Path) -> list[Imported]:
    return imports(
        path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
    )


def _welfare_files() -> list[Path]:
    return sorted(WELFARE.rglob("*.py"))


def _domain(module: str) -> str | None:
    """The folder under welfare/ a dotted name belongs to (None for welfare/db.py and the
    other modules beside the folders)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "welfare":
        return None
    return parts[1] if (WELFARE / parts[1]).is_dir() else None


def two_way_pairs() -> set[frozenset[str]]:
    edges: set[tuple[str, str]] = set()
    for path in _welfare_files():
        source = _domain(_module_name(path))
        if source is None:
            continue
        for imported in _imports_of(path):
            target = _domain(imported.name)
            if target is not None and target != source:
                edges.add((source, target))
    return {frozenset((a, b)) for a, b in edges if (b, a) in edges}


def test_welfare_imports_neither_the_http_side_nor_notifications_nor_twilio() -> None:
    offenders = sorted(
        {
            f"{path.relative_to(ROOT)} imports {imported.name}"
            for path in _welfare_files()
            for imported in _imports_of(path)
            if imported.name.split(".")[0] in FORBIDDEN_IN_WELFARE
            and not (path == ENTRY_POINT and imported.deferred)
        }
    )
    assert offenders == []


def test_no_two_domain_folders_import_each_other() -> None:
    assert sorted(sorted(pair) for pair in two_way_pairs()) == []


def _beside(module: str) -> str | None:
    """The module beside the folders (welfare/db.py, welfare/erasure.py...) a dotted name is in."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "welfare" or _domain(module) is not None:
        return None
    return parts[1] if (WELFARE / f"{parts[1]}.py").is_file() else None


def flows() -> set[str]:
    """Modules beside the folders that import a folder: the cross-domain flows (erasure,
    consents, delivery...) and the entry points. The rest are base modules (db, errors, authz,
    hooks...), which any folder may use."""
    return {
        path.stem
        for path in WELFARE.glob("*.py")
        if any(_domain(imported.name) for imported in _imports_of(path))
    }


def test_no_domain_folder_imports_a_flow() -> None:
    """A flow sits above the folders it calls: a folder that imported one would depend on
    everything the flow does (and, through it, possibly on itself)."""
    above = flows()
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {imported.name}"
        for path in _welfare_files()
        if _domain(_module_name(path)) is not None
        for imported in _imports_of(path)
        if _beside(imported.name) in above
    )
    assert offenders == []


def test_the_reader_sees_every_kind_of_import() -> None:
    source = """
import fastapi
from twilio.rest import Client
from . import sibling
from ..db import upsert


def command() -> None:
    from api.app import create_app
"""
    found = imports(source, "welfare.lookup.service")
    assert Imported("fastapi", False) in found
    assert Imported("twilio.rest.Client", False) in found
    assert Imported("welfare.lookup.sibling", False) in found
    assert Imported("welfare.db.upsert", False) in found
    assert Imported("api.app", True) in found
