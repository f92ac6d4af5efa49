# Chinese text uses fullwidth punctuation on purpose.
# ruff: noqa: RUF001
"""Message templates: three languages, no personal or health data, at most two SMS segments."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from notifications import messages
from notifications.messages import (
    LANGUAGES,
    AllClear,
    all_clear_sms,
    classify_reply,
    coming_notice_sms,
    contact_test_sms,
    finder_alert_sms,
    found_by_finder_sms,
    found_sms,
    manager_escalation_sms,
    missing_alert_sms,
    pick_language,
    sms_segments,
    twilio_opt_change,
    welfare_concern_sms,
)

LONG_LATIN = "Harbour View Gardens Phase " + "X" * 200
LONG_CJK = "海景花园" * 60
LONG_KOREAN = "해운대 아이파크 " * 30
PHONE = "+852 2345 6789"
REF = "W-4821"
LINK = "https://welfare.example.org/alerts/0f5a3c1e"
# The longest realistic answer link: a 40-character base URL, "/r/" and a 16-character token.
BASE_40 = "https://welfare.harbourviewgarden.com.hk"
ANSWER = f"{BASE_40}/r/Xk3_9aQzT1-vLm0P"
# The longest map link a finder's coordinates make (public_reports.map_link).
MAP = "https://maps.google.com/?q=-22.28012,-114.15012"
# A contact test's link (`/v/`), and the console's list of unverified contacts of a site.
TEST_LINK = f"{BASE_40}/v/Xk3_9aQzT1-vLm0P"
UNVERIFIED_LINK = f"{BASE_40}/console/contacts/unverified"

SMS_BUILDERS: dict[str, Callable[[str, str, str], str]] = {
    "found": lambda lang, site, place: found_sms(
        lang, site_name=site, location=place, office_phone=PHONE, reference=REF, link=ANSWER
    ),
    "found_mainland_phone": lambda lang, site, place: found_sms(
        lang,
        site_name=site,
        location=place,
        office_phone="+86 21 6123 4567",
        reference=REF,
        link=ANSWER,
    ),
    "welfare_concern": lambda lang, site, place: welfare_concern_sms(
        lang, site_name=site, office_phone=PHONE, reference=REF, link=ANSWER
    ),
    "missing_alert": lambda lang, site, place: missing_alert_sms(lang, site_name=site, link=LINK),
    "coming_notice": lambda lang, site, place: coming_notice_sms(
        lang, relationship="son", reference="7K3QAB"
    ),
    "found_by_finder": lambda lang, site, place: found_by_finder_sms(
        lang,
        site_name=site,
        office_phone="+86 21 6123 4567",
        reference=REF,
        link=ANSWER,
        map_link=MAP,
    ),
    "finder_alert": lambda lang, site, place: finder_alert_sms(lang, site_name=site, link=LINK),
    "manager_escalation": lambda lang, site, place: manager_escalation_sms(
        lang, site_name=site, reference=REF, link=LINK
    ),
    "all_clear_safe": lambda lang, site, place: all_clear_sms(
        lang, "safe", site_name=site, reference=REF, office_phone=PHONE, at="12:40"
    ),
    "all_clear_closed": lambda lang, site, place: all_clear_sms(
        lang, "closed", site_name=site, reference=REF, office_phone=PHONE, at="12:40"
    ),
    "contact_test": lambda lang, site, place: contact_test_sms(
        lang, site_name=site, link=TEST_LINK
    ),
    "consent_review_contacts": lambda lang, site, place: messages.staff_notice_sms(
        lang,
        "consent_review_contacts",
        site_name=site,
        kind="",
        when="2027-01-31",
        link=UNVERIFIED_LINK,
        count=128,
    ),
    "consent_unverified_contacts": lambda lang, site, place: messages.staff_notice_sms(
        lang,
        "consent_unverified_contacts",
        site_name=site,
        kind="",
        when="2027-01-31",
        link=UNVERIFIED_LINK,
        count=128,
    ),
}
HEALTH_WORDS = [
    "dementia",
    "alzheimer",
    "medical",
    "hospital",
    "injur",
    "ill",
    "diabet",
    "痴呆",
    "失智",
    "医",
    "病",
    "伤",
    "치매",
    "병",
    "부상",
    "의료",
]


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh-CN", "zh-CN"),
        ("zh-HK", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("zh-Hant-HK", "zh-CN"),
        ("zh", "zh-CN"),
        ("yue-HK", "zh-CN"),
        ("cmn", "zh-CN"),
        ("ko-KR", "ko-KR"),
        ("ko", "ko-KR"),
        ("KO_kr", "ko-KR"),
        ("en-GB", "en"),
        ("en-US", "en"),
        ("fr-FR", "en"),
        ("", "en"),
        (None, "en"),
        ("not a tag!", "en"),
    ],
)
def test_pick_language(tag: str | None, expected: str) -> None:
    assert pick_language(tag) == expected


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count twice
        ("€" * 81, 2),
        ("好" * 70, 1),
        ("好" * 71, 2),
        ("好" * 134, 2),
        ("好" * 135, 3),
        ("a" * 69 + "…", 1),  # one non-GSM character makes the whole text UCS-2
        ("a" * 70 + "…", 2),
        ("😀" * 35, 1),  # an emoji is two UTF-16 units
        ("😀" * 36, 2),
    ],
)
def test_sms_segments(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", sorted(SMS_BUILDERS))
@pytest.mark.parametrize(
    ("site", "place"),
    [
        ("Harbour View Gardens", "Building 1, 3/F stairwell"),
        (LONG_LATIN, "L" * 200),
        (LONG_CJK, "一座三楼楼梯间" * 30),
        (LONG_KOREAN, "1동 3층 계단 " * 30),
        ("海景花园", "Building 1, 3/F " * 15),
    ],
)
def test_every_sms_fits_in_two_segments(lang: str, name: str, site: str, place: str) -> None:
    text = SMS_BUILDERS[name](lang, site, place)
    assert 1 <= sms_segments(text) <= 2, text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_short_names_are_kept_whole_and_fixed_parts_never_cut(lang: str) -> None:
    text = found_sms(
        lang,
        site_name="Harbour View",
        location="Block 1 lobby",
        office_phone=PHONE,
        reference=REF,
        link=ANSWER,
    )
    assert "Harbour View" in text and "Block 1 lobby" in text
    assert PHONE in text and REF in text and "1" in text
    assert "…" not in text and "..." not in text


def test_the_longest_answer_link_has_a_40_character_base() -> None:
    assert len(BASE_40) == 40 and len(ANSWER) == 40 + len("/r/") + 16


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(
    ("site", "place"),
    [
        ("海景花园", "一座三楼楼梯间"),
        ("해운대 아이파크", "1동 3층 계단"),
        ("Harbour View", "Block 1"),
    ],
)
def test_alert_sms_ends_with_the_whole_answer_link_and_keeps_real_names_whole(
    lang: str, site: str, place: str
) -> None:
    for phone in (PHONE, "+86 21 6123 4567"):
        found = found_sms(
            lang, site_name=site, location=place, office_phone=phone, reference=REF, link=ANSWER
        )
        concern = welfare_concern_sms(
            lang, site_name=site, office_phone=phone, reference=REF, link=ANSWER
        )
        for text in (found, concern):
            # Last, after a space: no punctuation of the text is taken into the link.
            assert text.endswith(f" {ANSWER}") and sms_segments(text) <= 2, text
            assert site in text and phone in text and REF in text
        assert place in found


@pytest.mark.parametrize("lang", LANGUAGES)
def test_long_names_are_cut_with_an_ellipsis_but_phone_reference_and_link_stay(lang: str) -> None:
    text = found_sms(
        lang,
        site_name=LONG_CJK,
        location=LONG_LATIN,
        office_phone=PHONE,
        reference=REF,
        link=ANSWER,
    )
    # Each cut field ends in an ellipsis of its own alphabet: the CJK site name in "…", the
    # Latin (GSM-7) location in "...", which costs no UCS-2 character.
    assert text.count("…") == 1 and text.count("...") == 1
    assert text[text.index("…") - 1] in LONG_CJK and text[text.index("...") - 1] in LONG_LATIN
    assert text.index("…") < text.index("...")
    assert text.endswith(ANSWER)
    assert PHONE in text and REF in text
    alert = missing_alert_sms(lang, site_name=LONG_LATIN, link=LINK)
    assert LINK in alert and sms_segments(alert) <= 2


def test_english_with_plain_names_stays_gsm7() -> None:
    text = found_sms(
        "en-GB",
        site_name="S" * 200,
        location="L" * 200,
        office_phone=PHONE,
        reference=REF,
        link=ANSWER,
    )
    assert messages.is_gsm7(text)
    assert sms_segments(text) == 2 and len(text) > 200  # the GSM budget is used, not UCS-2's


def test_too_long_fixed_parts_raise_instead_of_sending_three_segments() -> None:
    with pytest.raises(ValueError, match="two segments"):
        missing_alert_sms("ko-KR", site_name="Site", link="https://x.example/" + "a" * 200)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_language_reads_in_its_own_script(lang: str) -> None:
    text = found_sms(
        lang, site_name="HVG", location="B1", office_phone=PHONE, reference=REF, link=ANSWER
    )
    if lang == "zh-CN":
        assert "找到" in text and "回复1" in text and "链接" in text
    elif lang == "ko-KR":
        assert "입주민" in text and ("찾았" in text or "발견" in text)
    else:
        assert "found" in text and "Reply 1" in text


@pytest.mark.parametrize(
    "builder",
    [
        found_sms,
        found_by_finder_sms,
        finder_alert_sms,
        welfare_concern_sms,
        missing_alert_sms,
        manager_escalation_sms,
        all_clear_sms,
    ],
)
def test_sms_templates_take_no_name(builder: Callable[..., str]) -> None:
    parameters = set(inspect.signature(builder).parameters)
    assert not {"name", "resident_name", "full_name", "preferred_name"} & parameters


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", sorted(SMS_BUILDERS))
def test_no_health_words_in_sms(lang: str, name: str) -> None:
    text = SMS_BUILDERS[name](lang, "Harbour View", "Block 1").casefold()
    for word in HEALTH_WORDS:
        # "ill" as a whole word only (English "will" is fine)
        if word == "ill":
            assert " ill " not in f" {text} "
        else:
            assert word not in text, (word, text)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(
    ("relationship", "words"),
    [
        ("son", ("son", "儿子", "아드님")),
        ("Son (works in Seoul)", ("son", "儿子", "아드님")),
        ("eldest daughter", ("daughter", "女儿", "따님")),
        ("son-in-law", ("son-in-law", "女婿", "사위")),
    ],
)
def test_coming_notice_names_the_relationship(
    lang: str, relationship: str, words: tuple[str, str, str]
) -> None:
    text = coming_notice_sms(lang, relationship=relationship, reference="7K3QAB")
    expected = {"en": words[0], "zh-CN": words[1], "ko-KR": words[2]}[lang]
    assert expected in text
    assert sms_segments(text) == 1


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("relationship", ["Wang Lei", "Mr. Kim Ji-hoon", "", None])
def test_coming_notice_never_repeats_unknown_relationship_text(
    lang: str, relationship: str | None
) -> None:
    text = coming_notice_sms(lang, relationship=relationship, reference="7K3QAB")
    assert "Wang" not in text and "Kim" not in text
    who = {
        "en": "another emergency contact",
        "zh-CN": "另一位紧急联系人",
        "ko-KR": "다른 비상연락처",
    }
    assert who[lang] in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_call_texts_and_prompts_exist_in_every_language(lang: str) -> None:
    found = messages.found_call_text(lang, site_name="Harbour View", location="Block 1")
    checkin = messages.checkin_call_text(lang, site_name="Harbour View")
    assert "Harbour View" in found and "Block 1" in found and "Harbour View" in checkin
    concern = messages.welfare_concern_call_text(lang, site_name="Harbour View")
    manager = messages.manager_escalation_call_text(lang, site_name="Harbour View", reference=REF)
    assert "Harbour View" in concern and REF in manager
    for purpose in ("found", "checkin", "concern"):
        prompt = messages.call_prompt(lang, purpose)  # type: ignore[arg-type]
        assert "1" in prompt and "2" in prompt
        assert messages.call_thanks(lang, purpose)  # type: ignore[arg-type]


def test_call_text_shortens_very_long_names() -> None:
    text = messages.found_call_text("en", site_name="S" * 500, location="L" * 500)
    assert len(text) < 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "confirm"),
        ("１", "confirm"),
        (" 1 ", "confirm"),
        ("yes", "confirm"),
        ("Yes.", "confirm"),
        ("YES!", "confirm"),
        ("y", "confirm"),
        ("ok", "confirm"),
        ("ＯＫ", "confirm"),
        ("Okay", "confirm"),
        ("coming", "confirm"),
        ("On my way", "confirm"),
        ("on my way!!", "confirm"),
        ("ok, on my way", "confirm"),
        ("I'm coming", "confirm"),
        ("I’m coming", "confirm"),
        ("是", "confirm"),
        ("好", "confirm"),
        ("好的", "confirm"),
        ("好的。", "confirm"),
        ("可以", "confirm"),
        ("来", "confirm"),
        ("我来", "confirm"),
        ("马上来", "confirm"),
        ("好的，马上来！", "confirm"),
        ("收到", "confirm"),
        ("确认", "confirm"),
        ("馬上來", "confirm"),
        ("네", "confirm"),
        ("예", "confirm"),
        ("응", "confirm"),
        ("알겠습니다", "confirm"),
        ("확인", "confirm"),
        ("가요", "confirm"),
        ("갈게요", "confirm"),
        ("지금 가요", "confirm"),
        ("네, 지금 가요~", "confirm"),
        ("STOP", "stop"),
        ("stop", "stop"),
        (" Stop. ", "stop"),
        ("STOPALL", "stop"),
        ("unsubscribe", "stop"),
        ("CANCEL", "stop"),
        ("end", "stop"),
        ("QUIT", "stop"),
        ("optout", "stop"),
        ("退订", "stop"),
        ("수신거부", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("HELP", "help"),
        ("info", "help"),
        ("", None),
        ("   ", None),
        ("no", None),
        ("not coming", None),
        ("can't come", None),
        ("yesterday", None),
        ("2", None),
        ("12", None),
        ("来不了", None),
        ("不来", None),
        ("不可以", None),
        ("못 가요", None),
        ("안 가요", None),
        ("who is this?", None),
        ("stop calling me at work", None),
    ],
)
def test_classify_reply(text: str, expected: str | None) -> None:
    assert classify_reply(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", "stop"),
        ("quit", "stop"),
        ("START", "start"),
        ("yes", "start"),  # Twilio re-subscribes on YES; here it is also a confirmation
        ("unstop", "start"),
        ("1", None),
        ("退订", None),  # our own opt-out word: Twilio does not act on it
        ("help", None),
    ],
)
def test_twilio_opt_change_mirrors_twilio_keywords(text: str, expected: str | None) -> None:
    assert twilio_opt_change(text) == expected


def test_yes_confirms_and_resubscribes() -> None:
    assert classify_reply("Yes") == "confirm"
    assert twilio_opt_change("Yes") == "start"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_all_clear_says_safe_with_the_time_or_closed_and_keeps_the_reference(
    lang: str,
) -> None:
    safe = all_clear_sms(
        lang, "safe", site_name="Harbour View", reference=REF, office_phone=PHONE, at="12:40"
    )
    closed = all_clear_sms(
        lang, "closed", site_name="Harbour View", reference=REF, office_phone=PHONE, at="12:40"
    )
    assert REF in safe and "12:40" in safe and PHONE in safe
    assert REF in closed and "12:40" not in closed and PHONE in closed
    safe_word, closed_word = {
        "en": ("safe", "no longer needed"),
        "zh-CN": ("安全", "不再需要"),
        "ko-KR": ("안전", "필요하지 않아"),
    }[lang]
    assert safe_word in safe and safe_word not in closed and closed_word in closed
    # The whole budget, with a long site name in another script: still two segments, cut.
    wordings: tuple[AllClear, ...] = ("safe", "closed")
    for wording in wordings:
        long = all_clear_sms(
            lang, wording, site_name=LONG_CJK, reference=REF, office_phone=PHONE, at="12:40"
        )
        assert sms_segments(long) <= 2 and REF in long and PHONE in long


# --- contact tests (issue 15 item 5) ------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("site", ["Harbour View", "海景花园", "해운대 아이파크", LONG_CJK])
def test_the_contact_test_sms_ends_with_its_whole_link_and_names_the_site(
    lang: str, site: str
) -> None:
    text = contact_test_sms(lang, site_name=site, link=TEST_LINK)
    assert text.endswith(f" {TEST_LINK}") and sms_segments(text) <= 2, text
    if site != LONG_CJK:
        assert site in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_contact_test_call_says_the_site_and_asks_for_1_to_confirm(lang: str) -> None:
    text = messages.contact_test_call_text(lang, site_name="Harbour View")
    assert "Harbour View" in text
    prompt = messages.call_prompt(lang, "contact_test")
    assert "1" in prompt and "2" not in prompt
    assert messages.call_thanks(lang, "contact_test") != messages.call_thanks(lang, "found")
    if lang == "en":
        assert text == "This is a test from Harbour View. Nothing has happened."
        assert prompt == "Press 1 to confirm this number."


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("notice", ["consent_review_contacts", "consent_unverified_contacts"])
def test_the_consent_reminder_says_how_many_contacts_are_not_verified(
    lang: str, notice: str
) -> None:
    text = messages.staff_notice_sms(
        lang,
        notice,  # type: ignore[arg-type]
        site_name="Harbour View",
        kind="",
        when="2027-01-31",
        link=UNVERIFIED_LINK,
        count=7,
    )
    assert "7" in text and text.endswith(UNVERIFIED_LINK) and sms_segments(text) <= 2
    if lang == "en":
        assert "7 contacts not verified" in text
