"""The families' texts use the pages' words: in Chinese the person is 居民 (resident), never
住户 (household), and in Korean 입주민, as the console and the answer page say."""

from __future__ import annotations

import pytest

from notifications.messages import (
    checkin_call_text,
    coming_notice_sms,
    found_call_text,
    voicemail_text,
    welfare_concern_call_text,
)
from tests.notifications.test_messages import PHONE, REF, SMS_BUILDERS

RESIDENT = {"zh-CN": "居民", "ko-KR": "입주민"}
NOT_THE_RESIDENT = {"zh-CN": ["住户"], "ko-KR": ["거주자", "입주자"]}


def _texts(language: str) -> dict[str, str]:
    texts = {name: build(language, "海景花园", "大堂") for name, build in SMS_BUILDERS.items()}
    texts["coming_notice_daughter"] = coming_notice_sms(
        language, relationship="daughter", reference="7K3QAB"
    )
    texts["found_call"] = found_call_text(language, site_name="海景花园", location="大堂")
    texts["checkin_call"] = checkin_call_text(language, site_name="海景花园")
    texts["concern_call"] = welfare_concern_call_text(language, site_name="海景花园")
    texts["voicemail"] = voicemail_text(language, reference=REF, office_phone=PHONE)
    return texts


@pytest.mark.parametrize("language", ["zh-CN", "ko-KR"])
def test_the_family_texts_call_the_person_a_resident_as_the_pages_do(language: str) -> None:
    texts = _texts(language)
    for name, text in texts.items():
        for wrong in NOT_THE_RESIDENT[language]:
            assert wrong not in text, (name, text)
    for name in ("found_call", "concern_call", "voicemail"):  # never shortened
        assert RESIDENT[language] in texts[name], (name, texts[name])
