"""The channel registry and the dispatcher's neutrality: it renders a `Text` or a `CallScript`,
hands it to the sender registered for the row's kind, and knows no provider."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications.channels import CallScript, ChannelRegistry, Text
from notifications.console_channel import ConsoleChannel
from notifications.dispatcher import Dispatcher
from tests.notifications.test_dispatcher import (  # noqa: F401 (fixtures)
    _events,
    _rows,
    incident_id,
    report_found,
)
from welfare.channels import ChannelKind
from welfare.outbox.models import OutboxStatus
from welfare.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The entry points' wiring may name providers; nothing else outside a provider's package does.
WIRING = {"notifications/runtime.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def imports_outside(package: str, modules: tuple[str, ...]) -> list[str]:
    """Imports of `modules` (or their submodules) in notifications/ outside `package` and the
    entry points' wiring: a provider's SDK stays in its own package."""
    leaks = []
    for path in sorted((ROOT / "notifications").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if where.startswith(f"{package}/") or where in WIRING:
            continue
        for name in _imports(path):
            if any(name == module or name.startswith(f"{module}.") for module in modules):
                leaks.append(f"{where}: {name}")
    return leaks


def test_only_the_twilio_package_imports_twilio() -> None:
    assert imports_outside("notifications/twilio", ("twilio", "notifications.twilio")) == []


def test_the_dispatcher_hands_each_kind_to_its_own_sender_as_a_text_or_a_script(
    writers: sessionmaker[Session],
    settings: Settings,
    incident_id: uuid.UUID,  # noqa: F811 (the fixture imported above)
) -> None:
    texts, calls = ConsoleChannel(), ConsoleChannel()
    registry = ChannelRegistry({ChannelKind.sms: texts, ChannelKind.voice: calls})
    assert Dispatcher(writers, registry, settings).run_once() == 2
    assert [item.kind for item in texts.sent] == ["sms"]
    assert [item.kind for item in calls.sent] == ["voice"]
    assert "<" not in calls.sent[0].content  # a script, not a provider's markup


def test_a_kind_without_a_sender_fails_in_words_and_the_step_moves_on(
    db: Session,
    writers: sessionmaker[Session],
    settings: Settings,
    incident_id: uuid.UUID,  # noqa: F811 (the fixture imported above)
) -> None:
    only_sms = ConsoleChannel()
    Dispatcher(writers, ChannelRegistry({ChannelKind.sms: only_sms}), settings).run_once()
    rows = {row.kind: row for row in _rows(db, incident_id)}
    assert rows[ChannelKind.sms].status == OutboxStatus.sent
    call = rows[ChannelKind.voice]
    assert (call.status, call.error_reason) == (OutboxStatus.failed, "no sender for voice")
    assert "failed" in _events(db, incident_id)


def test_every_kind_registers_one_sender_for_sms_and_calls() -> None:
    console = ConsoleChannel()
    registry = ChannelRegistry.every_kind(console)
    assert registry.kinds() == [ChannelKind.sms, ChannelKind.voice]
    assert registry.sender(ChannelKind.sms) is registry.sender(ChannelKind.voice) is console


def test_neutral_contents_carry_no_provider_words() -> None:
    script = CallScript("Please come to the lobby", "found", detect_machine=True)
    assert dict(script.keys) == {"1": "confirms", "2": "connects to the site office"}
    assert Text("hello").body == "hello"
