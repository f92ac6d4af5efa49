"""The in-transaction hooks between welfare/ folders (welfare/hooks.py): a change that nothing
follows fails loudly instead of leaving the lookup index or a timeline silently behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ("hooks.resident_changed(None, uuid.uuid4())", "import welfare.lookup"),
        ("hooks.household_changed(None, uuid.uuid4())", "import welfare.lookup"),
        ("hooks.incident_event(None, None, 'queued')", "import welfare.incidents"),
    ],
)
def test_a_change_nothing_follows_raises(call: str, says: str) -> None:
    # A fresh interpreter: in this one the tests' imports have registered every listener.
    code = f"import uuid\nfrom welfare import hooks\n{call}\n"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert run.returncode != 0 and says in run.stderr


def test_the_lookup_follows_residents_once_it_is_imported() -> None:
    code = (
        "import welfare.lookup\nfrom welfare import hooks\n"
        "print(len(hooks._resident_changed), len(hooks._household_changed))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert run.stdout.split() == ["1", "1"], run.stderr
