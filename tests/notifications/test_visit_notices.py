"""The texts of staff notices about visits and consent reviews: rendered in the user's
language, at most two segments, no name, unit or note, a link to sign in for the rest."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlmodel import Session

from notifications import messages
from notifications.channels import Text
from notifications.dispatcher import RenderError, render
from welfare.channels import ChannelKind
from welfare.outbox.models import OutboxMessage
from welfare.settings import Settings
from welfare.sites.models import Site


def sms_text(db: Session, row: OutboxMessage, settings: Settings) -> str:
    content = render(db, row, settings)
    assert isinstance(content, Text)
    return content.body


def _row(site: Site, template: str, language: str, **params: str) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=uuid.uuid4().hex,
        kind=ChannelKind.sms,
        to_phone="+85291234567",
        language=language,
        template=template,
        params={"site_id": str(site.id), **params},
    )


@pytest.mark.parametrize("language", ["en", "zh-CN", "ko-KR"])
@pytest.mark.parametrize(
    "template",
    ["visit_reminder", "visit_overdue", "visit_missed", "visit_not_home", "visit_concern"],
)
def test_visit_notices_name_the_time_in_the_sites_zone_and_link_to_the_visit(
    db: Session, site: Site, settings: Settings, template: str, language: str
) -> None:
    visit_id = uuid.uuid4()
    start = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Hong Kong
    text = sms_text(
        db,
        _row(
            site,
            template,
            language,
            visit_id=str(visit_id),
            kind="home_visit",
            window_start=start.isoformat(),
        ),
        settings,
    )
    assert "2026-12-01 10:00" in text
    assert text.endswith(f"https://welfare.test/api/v1/visits/{visit_id}")
    assert text.startswith(site.name[:6])  # shortened to fit when the text is UCS-2
    assert messages.sms_segments(text) <= messages.MAX_SEGMENTS


@pytest.mark.parametrize(("stage", "word"), [("60", "review"), ("overdue", "unverified")])
def test_consent_review_notices(
    db: Session, site: Site, settings: Settings, stage: str, word: str
) -> None:
    resident_id = uuid.uuid4()
    text = sms_text(
        db,
        _row(
            site,
            "consent_review",
            "en",
            consent_id=str(uuid.uuid4()),
            resident_id=str(resident_id),
            review_due="2027-01-31T16:30:00+00:00",
            stage=stage,
        ),
        settings,
    )
    assert word in text and "2027-02-01" in text  # the due day in Hong Kong
    assert f"/api/v1/residents/{resident_id}/consents" in text


def test_a_row_without_a_site_is_a_render_error(db: Session, settings: Settings) -> None:
    row = OutboxMessage(
        idempotency_key="x", kind=ChannelKind.sms, to_phone="+1", template="visit_missed"
    )
    with pytest.raises(RenderError):
        render(db, row, settings)
