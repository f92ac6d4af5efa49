"""Call TwiML: Gather attributes, language per contact, repeat once then goodbye, 2 dials."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest

from notifications import messages
from notifications.twilio.twiml import MAX_INLINE_TWIML, call_twiml, gather_twiml, with_attempt

GATHER_URL = "https://welfare.example.org/webhooks/twilio/gather?row=7f3e&sig=abc"
OFFICE = "+85223456789"


def parse(xml: str) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    return root


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def found_call(lang: str) -> ET.Element:
    text = messages.found_call_text(lang, site_name="Harbour View", location="Block 1 lobby")
    return parse(call_twiml(lang, text=text, gather_url=GATHER_URL))


@pytest.mark.parametrize(
    ("lang", "say_language"),
    [
        ("en-GB", "en-GB"),
        ("en-US", "en-GB"),
        ("zh-CN", "cmn-CN"),
        ("zh-HK", "cmn-CN"),
        ("ko-KR", "ko-KR"),
        (None, "en-GB"),
    ],
)
def test_every_say_uses_the_contacts_language(lang: str | None, say_language: str) -> None:
    root = found_call(lang or "")
    says = root.findall(".//Say")
    assert says
    assert {say.get("language") for say in says} == {say_language}


@pytest.mark.parametrize("lang", ["en-GB", "zh-CN", "ko-KR"])
def test_call_gathers_one_digit_with_post_and_timeout(lang: str) -> None:
    root = found_call(lang)
    first = root[0]
    assert first.tag == "Gather"
    assert first.get("numDigits") == "1"
    assert first.get("method") == "POST"
    assert first.get("timeout") == "8"
    action = first.get("action") or ""
    assert action.startswith("https://welfare.example.org/webhooks/twilio/gather?")
    assert query(action) == {"row": ["7f3e"], "sig": ["abc"], "attempt": ["1"]}
    said = [say.text or "" for say in first.findall("Say")]
    assert said[0].startswith(
        messages.found_call_text(lang, site_name="Harbour View", location="Block 1 lobby")[:10]
    )
    assert said[-1] == messages.call_prompt(lang, "found")


@pytest.mark.parametrize("lang", ["en-GB", "zh-CN", "ko-KR"])
def test_no_key_repeats_the_message_once_then_says_goodbye(lang: str) -> None:
    root = found_call(lang)
    assert [child.tag for child in root] == ["Gather", "Gather", "Say", "Hangup"]
    first, second = root[0], root[1]
    assert [s.text for s in first.findall("Say")] == [s.text for s in second.findall("Say")]
    assert query(second.get("action") or "")["attempt"] == ["2"]
    assert root[2].text == messages.call_goodbye(lang)


def test_english_prompt_asks_for_1_coming_and_2_office() -> None:
    prompt = found_call("en")[0].findall("Say")[-1].text or ""
    assert "press 1" in prompt and "coming" in prompt
    assert "press 2" in prompt and "office" in prompt


def test_checkin_call_uses_the_checkin_prompt() -> None:
    text = messages.checkin_call_text("en", site_name="Harbour View")
    root = parse(call_twiml("en", text=text, gather_url=GATHER_URL, purpose="checkin"))
    prompt = root[0].findall("Say")[-1].text or ""
    assert "well" in prompt and "press 1" in prompt


def test_call_twiml_escapes_text() -> None:
    root = parse(call_twiml("en", text="Tom & Jerry <Gardens>", gather_url=GATHER_URL))
    assert root[0][0].text == "Tom & Jerry <Gardens>"


@pytest.mark.parametrize("lang", ["en", "zh-CN", "ko-KR"])
def test_longest_call_fits_twilios_inline_limit(lang: str) -> None:
    text = messages.found_call_text(lang, site_name="海" * 500, location="L" * 500)
    xml = call_twiml(lang, text=text, gather_url=GATHER_URL + "&pad=" + "x" * 200)
    assert len(xml) < MAX_INLINE_TWIML


@pytest.mark.parametrize("lang", ["en-GB", "zh-CN", "ko-KR"])
def test_key_1_thanks_and_hangs_up(lang: str) -> None:
    root = parse(
        gather_twiml(lang, digits="1", attempt=1, gather_url=GATHER_URL, office_phone=OFFICE)
    )
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == messages.call_thanks(lang, "found")
    assert root[0].get("language") == messages.say_language(lang)


@pytest.mark.parametrize("attempt", [1, 2])
def test_key_2_dials_the_office(attempt: int) -> None:
    root = parse(
        gather_twiml(
            "ko-KR", digits="2", attempt=attempt, gather_url=GATHER_URL, office_phone=OFFICE
        )
    )
    assert [child.tag for child in root] == ["Say", "Dial", "Say", "Hangup"]
    dial = root[1]
    assert dial.get("timeout") == "30"
    assert [number.text for number in dial.findall("Number")] == [OFFICE]
    assert root[0].get("language") == "ko-KR"


def test_key_2_without_office_phone_does_not_dial() -> None:
    root = parse(
        gather_twiml("en", digits="2", attempt=1, gather_url=GATHER_URL, office_phone=None)
    )
    assert root.find("Dial") is None
    assert root[-1].tag == "Hangup"


@pytest.mark.parametrize("digits", ["5", "*", "#", "", None])
def test_other_key_on_first_attempt_repeats_once(digits: str | None) -> None:
    root = parse(
        gather_twiml(
            "en",
            digits=digits,
            attempt=1,
            gather_url=with_attempt(GATHER_URL, 1),
            office_phone=OFFICE,
            text="The message.",
        )
    )
    gathers = root.findall("Gather")
    assert len(gathers) == 1
    assert query(gathers[0].get("action") or "") == {
        "row": ["7f3e"],
        "sig": ["abc"],
        "attempt": ["2"],
    }
    assert [s.text for s in gathers[0].findall("Say")] == [
        "The message.",
        messages.call_prompt("en", "found"),
    ]
    assert root[-2].text == messages.call_goodbye("en") and root[-1].tag == "Hangup"
    if digits and digits.strip():
        assert root[0].text == messages.call_not_understood("en")


def test_other_key_without_text_repeats_just_the_prompt() -> None:
    root = parse(
        gather_twiml("en", digits="9", attempt=1, gather_url=GATHER_URL, office_phone=OFFICE)
    )
    assert [s.text for s in root.findall("Gather/Say")] == [messages.call_prompt("en", "found")]


@pytest.mark.parametrize("digits", ["5", "", None])
def test_second_attempt_says_goodbye_without_another_gather(digits: str | None) -> None:
    root = parse(
        gather_twiml("zh-CN", digits=digits, attempt=2, gather_url=GATHER_URL, office_phone=OFFICE)
    )
    assert root.find("Gather") is None
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == messages.call_goodbye("zh-CN")
    assert root[0].get("language") == "cmn-CN"


def test_with_attempt_replaces_an_existing_attempt() -> None:
    url = with_attempt(with_attempt(GATHER_URL, 1), 2)
    assert query(url)["attempt"] == ["2"]
    assert url.startswith("https://welfare.example.org/webhooks/twilio/gather?row=7f3e&sig=abc&")
