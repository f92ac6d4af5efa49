"""The repository documents itself: README.md and docs/*.md link only to files it holds, and the
README's quick start is two commands, the demo's needing no test-only package."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.DOTALL)
_INLINE = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*:[^>\s]*)>")
_HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s)>\]]+|\bwww\.[^\s)>\]]+")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def link_targets(markdown: str) -> list[str]:
    """Every link target in `markdown` outside code: inline links and images, reference
    definitions, autolinks, HTML href/src, and bare URLs (GitHub makes those links too)."""
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    found = [m.group(1).strip("<>") for m in _INLINE.finditer(text)]
    found += [m.group(1).strip("<>") for m in _REFERENCE.finditer(text)]
    found += [m.group(1) for m in _AUTOLINK.finditer(text)]
    found += [m.group(1) for m in _HTML.finditer(text)]
    found += [m.group(0) for m in _BARE_URL.finditer(_AUTOLINK.sub("", text))]
    return found


def file_mentions(markdown: str) -> list[str]:
    """Paths written as code that name another document (`*.md`) or climb out (`../`): a
    reader follows them like links, so they are held to the same rule."""
    text = _FENCE.sub("", markdown)
    spans = [m.group(0).strip("`").strip() for m in _CODE_SPAN.finditer(text)]
    return [
        span
        for span in spans
        if " " not in span and (span.startswith("../") or span.split("#")[0].endswith(".md"))
    ]


def link_problem(document: Path, target: str, root: Path = ROOT) -> str | None:
    """Why `target`, linked from `document`, is not a file inside `root` (None when it is)."""
    path = target.split("#", 1)[0].split("?", 1)[0]
    if not target:
        return "an empty link"
    if _SCHEME.match(target) or target.startswith(("//", "www.")):
        return "leaves the repository"
    if not path:
        return None  # a heading in the same document
    if path.startswith("/"):
        return "an absolute path: link relative to the document"
    resolved = (document.parent / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file in the repository"
    return None


def test_the_link_checker_finds_every_kind_of_link_and_skips_code(tmp_path: Path) -> None:
    sample = textwrap.dedent(
        """\
        [up](../../outside.md) ![pic](img/missing.png "title") [ok](present.md#part)
        [web](https://example.com) <http://127.0.0.1:8000/> see www.example.org
        [ref]: /etc/passwd
        <a href="mailto:someone@example.com">mail</a> [same](#a-heading)
        `[code](nowhere.md)` and http://in.prose/too

        ```sh
        curl http://127.0.0.1:8000/healthz [x](fenced.md)
        ```
        """
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "present.md").write_text("")
    document = tmp_path / "docs" / "page.md"
    problems = {
        target: link_problem(document, target, root=tmp_path) for target in link_targets(sample)
    }
    assert problems == {
        "../../outside.md": "points outside the repository",
        "img/missing.png": "no such file in the repository",
        "present.md#part": None,
        "https://example.com": "leaves the repository",
        "http://127.0.0.1:8000/": "leaves the repository",
        "www.example.org": "leaves the repository",
        "/etc/passwd": "an absolute path: link relative to the document",
        "mailto:someone@example.com": "leaves the repository",
        "#a-heading": None,
        "http://in.prose/too": "leaves the repository",
    }


def problems_in(document: Path, root: Path = ROOT) -> list[str]:
    markdown = document.read_text(encoding="utf-8")
    problems = [
        f"{target}: {problem}"
        for target in link_targets(markdown)
        if (problem := link_problem(document, target, root)) is not None
    ]
    for mention in file_mentions(markdown):
        # Written as code, a path may be relative to the document or to the repository's root.
        here, there = link_problem(document, mention, root), link_problem(root / "x", mention, root)
        if here is not None and there is not None:
            problems.append(f"`{mention}`: {here}")
    return problems


def test_paths_written_as_code_count_when_they_name_a_document_or_climb_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("")
    document = tmp_path / "README.md"
    document.write_text(
        "See `../shared/BRIEF.md`, `docs/guide.md`, `docs/gone.md` and `welfare/` (not a doc)."
    )
    assert problems_in(document, root=tmp_path) == [
        "`../shared/BRIEF.md`: points outside the repository",
        "`docs/gone.md`: no such file in the repository",
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_points_to_a_file_in_the_repository(document: Path) -> None:
    problems = problems_in(document)
    assert not problems, f"{document.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_readme_links_the_product_and_architecture_guides() -> None:
    targets = link_targets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/product.md" in targets and "docs/architecture.md" in targets


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)]


def test_the_quick_start_is_two_commands_a_demo_and_the_ci_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_section = re.search(r"^## (.*)$", readme, re.MULTILINE)
    assert first_section and first_section.group(1) == "Quick start"
    demo, tests = quick_start()
    assert "\n" not in demo and "\n" not in tests
    assert demo.endswith("welfare demo") and "[test]" not in demo
    assert tests.endswith("python -m pytest -n auto")
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


TEST_ONLY = ("pytest", "httpx", "httpx2", "playwright", "schemathesis", "ruff")


def test_the_demo_needs_no_test_only_package(tmp_path: Path) -> None:
    """What `pip install -e .` gives is enough: every module of the three packages imports, and
    the demo migrates, seeds and builds its app, with the test extras made unimportable."""
    script = textwrap.dedent(
        f"""
        import importlib, importlib.abc, pkgutil, sys

        class NoTestPackages(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {TEST_ONLY!r}:
                    raise ImportError(f"{{name}} is a test-only package")
                return None

        for name in list(sys.modules):
            if name.split(".")[0] in {TEST_ONLY!r}:
                del sys.modules[name]
        sys.meta_path.insert(0, NoTestPackages())

        for package in ("welfare", "api", "notifications"):
            module = importlib.import_module(package)
            for info in pkgutil.walk_packages(module.__path__, package + "."):
                importlib.import_module(info.name)

        from api.app import create_app
        from welfare.db import make_engine, make_sessionmaker, session_scope, upgrade_database
        from welfare.demo import seed_demo
        from welfare.settings import Settings

        settings = Settings(database_url="sqlite:///{tmp_path / "demo.db"}", _env_file=None)
        upgrade_database(settings.database_url)
        with session_scope(make_sessionmaker(make_engine(settings.database_url))) as session:
            seed_demo(session)
        create_app(settings, demo=True)
        print("demo ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "demo ok" in done.stdout


# Where a path written as code in docs/architecture.md may be rooted: the repository, or the
# package or folder the paragraph is about (`incidents/staff_view.py` is under welfare/).
_PATH_ROOTS = ("", "welfare/", "api/", "api/pages/", "notifications/", "tests/")
_PATH_SPAN = re.compile(r"^[A-Za-z0-9_./<>{}-]+\.(?:py|html|md)$|^[A-Za-z0-9_/.-]+/$")


def code_paths(markdown: str) -> list[str]:
    """The paths written as code (`welfare/erasure.py`, `api/pages/console/`) in `markdown`,
    outside fenced blocks; placeholders such as `<area>` are left to the reader."""
    spans = [m.group(0).strip("`").strip() for m in _CODE_SPAN.finditer(_FENCE.sub("", markdown))]
    return [s for s in spans if _PATH_SPAN.match(s) and "/" in s and "<" not in s and "{" not in s]


def test_the_architecture_names_only_files_that_exist() -> None:
    document = ROOT / "docs" / "architecture.md"
    missing = [
        path
        for path in code_paths(document.read_text(encoding="utf-8"))
        if not any((ROOT / root / path).exists() for root in _PATH_ROOTS)
    ]
    assert missing == []


def test_a_stale_path_in_the_architecture_is_caught() -> None:
    text = "The board is in `api/pages/console.py`; pages in `console/`; see `<area>/x.py`."
    assert code_paths(text) == ["api/pages/console.py", "console/"]
    assert not (ROOT / "api/pages/console.py").exists()
