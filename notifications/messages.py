# Chinese text uses fullwidth punctuation (，：。) on purpose.
# ruff: noqa: RUF001, RUF002, RUF003
"""What the family, the guards and the residents hear and read, in English, Chinese and Korean.

Rules every template here keeps (the brief's "Messages"):

- No personal data and no health data in an SMS: no resident name, no condition, no medical
  word. The family recognises the sender (the site's name) and the reference; everything else is
  behind the office phone or, for guards, behind a login. None of the SMS functions even takes a
  name.
- Every SMS fits in at most two segments (`MAX_SEGMENTS`). The free-text parts (site name,
  location) are shortened with an ellipsis until it does; the reference, the office phone and
  links are never cut.

Language choice (`pick_language`): the contact's BCP 47 tag is reduced to one of the three
template languages. Any Chinese (`zh`, `zh-CN`, `zh-HK`, `zh-TW`, `zh-Hant-HK`, and the
Chinese-language codes `cmn`, `yue`) gets Simplified Chinese `zh-CN`: a Traditional-Chinese
reader understands it, which beats English; add a `zh-Hant` set here when it is needed. Any
Korean (`ko`, `ko-KR`, `ko-US`) gets `ko-KR`. Everything else, and anything unreadable, gets
English `en`.

Replies (`classify_reply`, `twilio_opt_change`): see their docstrings. In short, "YES" is a
confirmation here, and Twilio also treats it as an opt-in keyword (it re-subscribes a contact who
had sent STOP), so the inbound-SMS webhook should both confirm and clear the opt-out state.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from typing import Literal

Language = Literal["en", "zh-CN", "ko-KR"]
LANGUAGES: tuple[Language, ...] = ("en", "zh-CN", "ko-KR")
CallPurpose = Literal["found", "checkin", "concern", "contact_test"]
Reply = Literal["confirm", "stop", "start", "help"]

MAX_SEGMENTS = 2
# Spoken text has no segment limit, but an inline TwiML document must stay under 4,000
# characters, and nobody wants a location read out for a minute.
MAX_SPOKEN_FIELD = 100


def pick_language(tag: str | None) -> Language:
    """The template language for a contact's BCP 47 tag (see the module docstring)."""
    primary = (tag or "").strip().replace("_", "-").split("-")[0].lower()
    if primary in {"zh", "cmn", "yue", "wuu", "hak", "nan"}:
        return "zh-CN"
    if primary == "ko":
        return "ko-KR"
    return "en"


# --- SMS segments -------------------------------------------------------------------------------

# GSM 03.38 default alphabet; the extension table's characters cost two septets.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7_BASIC or ch in _GSM7_EXTENSION for ch in text)


def sms_segments(text: str) -> int:
    """How many SMS segments `text` takes (0 for an empty text).

    GSM-7: 160 septets in one segment, 153 per segment when split (extension characters such as
    `€` or `[` take two). Anything outside GSM-7 (Chinese, Korean, an emoji, a curly quote) sends
    the whole message as UCS-2: 70 UTF-16 units in one segment, 67 per segment when split.
    """
    if not text:
        return 0
    if is_gsm7(text):
        units = sum(2 if ch in _GSM7_EXTENSION else 1 for ch in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _clip(value: str, length: int) -> str:
    """`value` cut to `length` characters, the last being an ellipsis when anything was cut."""
    if len(value) <= length:
        return value
    if length <= 0:
        return ""
    ellipsis = "..." if is_gsm7(value) and length > 3 else "…"
    return value[: max(length - len(ellipsis), 0)].rstrip() + ellipsis


def _clean(value: str) -> str:
    """One line of plain text: no control characters, single spaces."""
    value = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in value)
    return " ".join(value.split())


# A shrinkable field is cut no shorter than this while a more compact wording remains to try.
_MIN_FIELD = 16

Render = Callable[..., str]


def _fit(variants: list[Render], fixed: dict[str, str], shrinkable: dict[str, str]) -> str:
    """The first wording that fits in MAX_SEGMENTS, shortening the longest shrinkable field.

    `variants` go from the fullest wording to the most compact. An English text turns UCS-2
    (67 characters a segment instead of 153) as soon as a site or place name is Chinese or
    Korean, so English templates carry a compact wording for that case.
    """
    fixed = {name: _clean(value) for name, value in fixed.items()}
    values = {name: _clean(value) for name, value in shrinkable.items()}
    for index, render in enumerate(variants):
        last = index == len(variants) - 1
        floor = {name: 1 if last else min(len(value), _MIN_FIELD) for name, value in values.items()}
        limits = {name: len(value) for name, value in values.items()}
        while True:
            text = render(**fixed, **{name: _clip(values[name], limits[name]) for name in values})
            if sms_segments(text) <= MAX_SEGMENTS:
                return text
            cuttable = [name for name in limits if limits[name] > floor[name]]
            if not cuttable:
                break
            limits[max(cuttable, key=lambda name: limits[name])] -= 1
    raise ValueError(
        "the SMS does not fit in two segments even with the place names shortened; "
        "the reference, office phone or link is too long"
    )


# --- SMS templates ------------------------------------------------------------------------------


def found_sms(
    lang: str | None,
    *,
    site_name: str,
    location: str,
    office_phone: str,
    reference: str,
    link: str,
) -> str:
    """To an emergency contact: the resident was found and is with staff; say if you are coming
    (the answer link, or reply 1 where two-way SMS works), or call the office.

    The link goes last, after a space, so every phone's linkifier stops where it ends (a
    Chinese full stop right after a URL is taken into it by some)."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, place, phone, ref, link: (
                f"{site}: the resident you are an emergency contact for has been found at "
                f"{place} and is with our staff. Reply 1 if you are coming, or call {phone}. "
                f"Ref {ref}. Answer here: {link}"
            ),
            lambda site, place, phone, ref, link: (
                f"{site}: the resident you are a contact for was found at {place}. "
                f"Call {phone}. Ref {ref}. Coming? {link}"
            ),
            lambda site, place, phone, ref, link: (
                f"{site}: resident found at {place}. Call {phone} Ref {ref} {link}"
            ),
        ],
        "zh-CN": [
            lambda site, place, phone, ref, link: (
                f"{site}：居民已在{place}被找到，工作人员陪同中。如会前来请回复1或点链接，"
                f"或致电{phone}。编号{ref} {link}"
            ),
            lambda site, place, phone, ref, link: (
                f"{site}：居民已在{place}找到，有人陪同。请点链接答复，"
                f"电话{phone}，编号{ref} {link}"
            ),
        ],
        "ko-KR": [
            lambda site, place, phone, ref, link: (
                f"{site}: 입주민을 {place}에서 찾았으며 직원이 함께 있습니다. 오시는지 "
                f"링크로 알려 주세요. 전화 {phone} 참조 {ref} {link}"
            ),
            lambda site, place, phone, ref, link: (
                f"{site}: {place}에서 입주민 발견. 오시나요? 전화 {phone} 참조 {ref} {link}"
            ),
        ],
    }
    return _fit(
        variants[pick_language(lang)],
        {"phone": office_phone, "ref": reference, "link": link},
        {"site": site_name, "place": location},
    )


def found_by_finder_sms(
    lang: str | None,
    *,
    site_name: str,
    office_phone: str,
    reference: str,
    link: str,
    map_link: str,
) -> str:
    """To an emergency contact, when a member of the public found the resident and shared where
    (the resident's finder_alerts consent): the finder's map link, then the answer link. The
    most compact wordings leave out the office phone (the answer page has it); the map link,
    the reference and the answer link are never cut."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, phone, ref, link, map: (
                f"{site}: a member of the public has found the resident you are an emergency "
                f"contact for and is waiting with them here: {map} Call {phone}. Ref {ref}. "
                f"Coming? {link}"
            ),
            lambda site, phone, ref, link, map: (
                f"{site}: resident found by a passer-by at {map} Call {phone} Ref {ref} {link}"
            ),
            lambda site, phone, ref, link, map: f"{site}: found {map} Ref {ref} {link}",
        ],
        "zh-CN": [
            lambda site, phone, ref, link, map: (
                f"{site}：有路人找到居民，正陪同等候，位置 {map} 电话{phone}，编号{ref} {link}"
            ),
            lambda site, phone, ref, link, map: (
                f"{site}：路人找到居民，位置 {map} 编号{ref} 答复 {link}"
            ),
        ],
        "ko-KR": [
            lambda site, phone, ref, link, map: (
                f"{site}: 시민이 입주민을 찾아 함께 기다리고 있습니다. 위치 {map} 전화 {phone} "
                f"참조 {ref} {link}"
            ),
            lambda site, phone, ref, link, map: f"{site}: 입주민 발견 {map} 참조 {ref} {link}",
        ],
    }
    return _fit(
        variants[pick_language(lang)],
        {"phone": office_phone, "ref": reference, "link": link, "map": map_link},
        {"site": site_name},
    )


def welfare_concern_sms(
    lang: str | None, *, site_name: str, office_phone: str, reference: str, link: str
) -> str:
    """To an emergency contact: the resident did not answer their check-in; please follow up
    (the answer link, or reply 1), or call the office."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, phone, ref, link: (
                f"{site}: we could not reach the resident you are an emergency contact for at "
                f"today's check-in. Reply 1 if you will check on them, or call {phone}. "
                f"Ref {ref}. Answer here: {link}"
            ),
            lambda site, phone, ref, link: (
                f"{site}: the resident's check-in got no answer. Call {phone}. Ref {ref}. "
                f"Answer: {link}"
            ),
            lambda site, phone, ref, link: (
                f"{site}: check-in got no answer. Call {phone} Ref {ref} {link}"
            ),
        ],
        "zh-CN": [
            lambda site, phone, ref, link: (
                f"{site}：今天的例行问候未能联系上居民。如您会跟进请回复1或点链接，"
                f"或致电{phone}。编号{ref} {link}"
            ),
            lambda site, phone, ref, link: (
                f"{site}：今天的问候未能联系上居民。请点链接答复，电话{phone}，编号{ref} {link}"
            ),
        ],
        "ko-KR": [
            lambda site, phone, ref, link: (
                f"{site}: 오늘 안부 확인 때 입주민과 연락이 닿지 않았습니다. 확인해 주실 수 "
                f"있는지 링크로 알려 주시거나 {phone}번으로 전화 주세요. 참조 {ref} {link}"
            ),
            lambda site, phone, ref, link: (
                f"{site}: 안부 확인 응답 없음. 링크로 답해 주세요. 전화 {phone} 참조 {ref} {link}"
            ),
        ],
    }
    return _fit(
        variants[pick_language(lang)],
        {"phone": office_phone, "ref": reference, "link": link},
        {"site": site_name},
    )


def missing_alert_sms(lang: str | None, *, site_name: str, link: str) -> str:
    """To a guard on duty: a resident is missing; the details are behind the (login) link."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, link: (
                f"{site}: a resident has been reported missing. Open the alert for the photo, "
                f"description and likely places: {link}"
            ),
            lambda site, link: f"{site}: a resident is reported missing. Details: {link}",
        ],
        "zh-CN": [
            lambda site, link: (
                f"{site}：有居民被报告走失。请打开提醒查看照片、外貌特征及可能去的地方：{link}"
            ),
            lambda site, link: f"{site}：有居民走失，详情：{link}",
        ],
        "ko-KR": [
            lambda site, link: (
                f"{site}: 입주민 실종 신고가 접수되었습니다. 사진, 인상착의, 갈 만한 장소는 "
                f"알림에서 확인하세요: {link}"
            ),
            lambda site, link: f"{site}: 입주민 실종 신고. 상세: {link}",
        ],
    }
    return _fit(variants[pick_language(lang)], {"link": link}, {"site": site_name})


def finder_alert_sms(lang: str | None, *, site_name: str, link: str) -> str:
    """To a guard on duty: a member of the public found a resident and is waiting with them;
    where, and who, is behind the (login) link."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, link: (
                f"{site}: a member of the public has found a resident and is waiting with them. "
                f"Open the alert for where: {link}"
            ),
            lambda site, link: f"{site}: a resident was found by a passer-by. Where: {link}",
        ],
        "zh-CN": [
            lambda site, link: f"{site}：有路人找到居民并在陪同等候。请打开提醒查看位置：{link}",
            lambda site, link: f"{site}：路人找到居民，位置：{link}",
        ],
        "ko-KR": [
            lambda site, link: (
                f"{site}: 시민이 입주민을 찾아 함께 기다리고 있습니다. 위치는 알림에서 "
                f"확인하세요: {link}"
            ),
            lambda site, link: f"{site}: 시민이 입주민 발견. 위치: {link}",
        ],
    }
    return _fit(variants[pick_language(lang)], {"link": link}, {"site": site_name})


def contact_test_sms(lang: str | None, *, site_name: str, link: str) -> str:
    """A test of a family contact's number (welfare/contact_checks.py): tap the link
    to confirm it reaches them. No name, no resident, nothing has happened."""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, link: (
                f"{site}: this is a test. You are listed as an emergency contact; nothing has "
                f"happened. Please tap to confirm this number: {link}"
            ),
            lambda site, link: f"{site}: a test, nothing has happened. Confirm this number: {link}",
        ],
        "zh-CN": [
            lambda site, link: (
                f"{site}：这是一条测试短信。您登记为紧急联系人，并无事情发生。"
                f"请点击确认此号码 {link}"
            ),
            lambda site, link: f"{site}：测试短信，并无事情发生。请点击确认号码 {link}",
        ],
        "ko-KR": [
            lambda site, link: (
                f"{site}: 테스트 문자입니다. 비상연락처로 등록되어 있으며 아무 일도 없습니다. "
                f"이 번호를 확인하려면 누르세요 {link}"
            ),
            lambda site, link: f"{site}: 테스트입니다. 번호 확인 {link}",
        ],
    }
    return _fit(variants[pick_language(lang)], {"link": link}, {"site": site_name})


PushTemplate = Literal["missing_alert", "manager_escalation"]

# A push notification's (title, body) per template: no more than the SMS says (the site and,
# for the manager, the reference; the details are behind sign-in, as the SMS's link is).
PUSH_NOTICES: dict[Language, dict[PushTemplate, tuple[str, str]]] = {
    "en": {
        "missing_alert": (
            "Resident missing",
            "{site}: a resident has been reported missing. Open the alert for the photo, "
            "description and likely places.",
        ),
        "manager_escalation": (
            "An incident needs you",
            "{site}: no emergency contact has confirmed for incident {ref}. "
            "Please take over the response.",
        ),
    },
    "zh-CN": {
        "missing_alert": (
            "住户走失",
            "{site}：有住户被报告走失。请打开提醒查看照片、外貌特征及可能去的地方。",
        ),
        "manager_escalation": (
            "有事件需要您处理",
            "{site}：事件{ref}仍无紧急联系人确认，请您接手处理。",
        ),
    },
    "ko-KR": {
        "missing_alert": (
            "입주민 실종",
            "{site}: 입주민 실종 신고가 접수되었습니다. 사진, 인상착의, 갈 만한 장소는 "
            "알림에서 확인하세요.",
        ),
        "manager_escalation": (
            "처리가 필요한 사건",
            "{site}: 사건 {ref}에 대해 확인한 비상연락처가 없습니다. 대응을 맡아 주세요.",
        ),
    },
}


def push_notice(
    lang: str | None, template: PushTemplate, *, site_name: str, reference: str = ""
) -> tuple[str, str]:
    """A push notification's title and body in the recipient's language."""
    title, body = PUSH_NOTICES[pick_language(lang)][template]
    return title, body.format(site=site_name, ref=reference)


def manager_escalation_sms(
    lang: str | None, *, site_name: str, reference: str, link: str | None = None
) -> str:
    """To the duty manager: no contact has confirmed; the incident needs a person."""
    tail = f" {link}" if link else ""
    variants: dict[Language, list[Render]] = {
        "en": [
            lambda site, ref, tail: (
                f"{site}: no emergency contact has confirmed for incident {ref}. "
                f"Please take over the response.{tail}"
            ),
            lambda site, ref, tail: f"{site}: incident {ref} unconfirmed, please take over.{tail}",
        ],
        "zh-CN": [
            lambda site, ref, tail: f"{site}：事件{ref}仍无紧急联系人确认，请您接手处理。{tail}"
        ],
        "ko-KR": [
            lambda site, ref, tail: (
                f"{site}: 사건 {ref}에 대해 확인한 비상연락처가 없습니다. 대응을 맡아 주세요.{tail}"
            )
        ],
    }
    return _fit(
        variants[pick_language(lang)], {"ref": reference, "tail": tail}, {"site": site_name}
    )


# Relationship words the "coming" notice may repeat, as (English key, Chinese, Korean). Only a
# known word is ever repeated: the relationship field is free text and could hold a name.
_RELATIONSHIPS: dict[str, tuple[str, str, str]] = {
    "son-in-law": ("son-in-law", "女婿", "사위분"),
    "daughter-in-law": ("daughter-in-law", "儿媳", "며느님"),
    "granddaughter": ("granddaughter", "孙女", "손녀분"),
    "grandson": ("grandson", "孙子", "손자분"),
    "grandchild": ("grandchild", "孙辈", "손주분"),
    "daughter": ("daughter", "女儿", "따님"),
    "son": ("son", "儿子", "아드님"),
    "child": ("child", "子女", "자녀분"),
    "husband": ("husband", "丈夫", "남편분"),
    "wife": ("wife", "妻子", "부인"),
    "spouse": ("spouse", "配偶", "배우자분"),
    "partner": ("partner", "伴侣", "배우자분"),
    "brother": ("brother", "兄弟", "형제분"),
    "sister": ("sister", "姐妹", "자매분"),
    "sibling": ("sibling", "兄弟姐妹", "형제분"),
    "nephew": ("nephew", "侄子", "조카분"),
    "niece": ("niece", "侄女", "조카분"),
    "mother": ("mother", "母亲", "어머님"),
    "father": ("father", "父亲", "아버님"),
    "parent": ("parent", "父母", "부모님"),
    "cousin": ("cousin", "表亲", "사촌분"),
    "relative": ("relative", "亲属", "친척분"),
    "friend": ("friend", "朋友", "친구분"),
    "neighbour": ("neighbour", "邻居", "이웃분"),
    "neighbor": ("neighbour", "邻居", "이웃분"),
    "carer": ("carer", "照顾者", "돌봄 담당자분"),
    "caregiver": ("carer", "照顾者", "돌봄 담당자분"),
    "guardian": ("guardian", "监护人", "후견인"),
}


def _relationship_words(relationship: str | None) -> tuple[str, str, str] | None:
    text = re.sub(r"\(.*?\)", " ", (relationship or "").casefold())
    words = re.findall(r"[a-z]+(?:-[a-z]+)*", text)
    for word in words:  # "eldest son", "son (works in Seoul)", "son-in-law"
        if word in _RELATIONSHIPS:
            return _RELATIONSHIPS[word]
    return None


def coming_notice_sms(lang: str | None, *, relationship: str | None, reference: str) -> str:
    """To contacts already notified: someone confirmed and is coming. Never a name.

    `relationship` is the confirming contact's relationship to the resident ("son", "daughter
    (works abroad)"); only a known relationship word is repeated, anything else becomes
    "another contact". The incident's `reference` says which alert it answers (and keeps a
    second incident's notice from being the same text as the first's: the limits per recipient
    send the same text to a number once a day).
    """
    words = _relationship_words(relationship)
    language = pick_language(lang)
    if language == "zh-CN":
        who = f"居民的{words[1]}" if words else "另一位紧急联系人"
        return f"最新消息（{reference}）：{who}已确认会前来。谢谢。"
    if language == "ko-KR":
        who = f"입주민의 {words[2]}께서" if words else "다른 비상연락처 분께서"
        return f"안내({reference}): {who} 오시기로 하셨습니다. 감사합니다."
    who = f"the resident's {words[0]}" if words else "another emergency contact"
    return f"Update on {reference}: {who} has confirmed they are coming. Thank you."


AllClear = Literal["safe", "closed"]


def all_clear_sms(
    lang: str | None,
    wording: AllClear,
    *,
    site_name: str,
    reference: str,
    office_phone: str,
    at: str = "",
) -> str:
    """To contacts already sent something: the incident is closed, nothing more will come.

    "safe": resolved with the resident safe and handed over, at `at` (site-local "12:40").
    "closed": anything else (cancelled, or resolved another way): a neutral "no longer needed",
    which says nothing about the resident's health. Never a name.
    """
    variants: dict[AllClear, dict[Language, list[Render]]] = {
        "safe": {
            "en": [
                lambda site, ref, phone, at: (
                    f"{site}: update on ref {ref}: the resident is safe and was handed over at "
                    f"{at}. No action is needed. Questions: {phone}"
                ),
                lambda site, ref, phone, at: (
                    f"{site}: ref {ref}: safe, handed over at {at}. Questions: {phone}"
                ),
            ],
            "zh-CN": [
                lambda site, ref, phone, at: (
                    f"{site}：编号{ref}：居民已安全，并于{at}完成交接。您无需再做任何事。"
                    f"如有疑问请致电{phone}。"
                )
            ],
            "ko-KR": [
                lambda site, ref, phone, at: (
                    f"{site}: 참조번호 {ref}: 입주민은 안전하며 {at}에 인계되었습니다. "
                    f"더 하실 일은 없습니다. 문의: {phone}"
                )
            ],
        },
        "closed": {
            "en": [
                lambda site, ref, phone, at: (
                    f"{site}: update on ref {ref}: this alert is no longer needed and the office "
                    f"has closed it. No action is needed. Questions: {phone}"
                ),
                lambda site, ref, phone, at: (
                    f"{site}: ref {ref}: alert closed by the office. Questions: {phone}"
                ),
            ],
            "zh-CN": [
                lambda site, ref, phone, at: (
                    f"{site}：编号{ref}的提醒已不再需要，管理处已将其关闭。您无需再做任何事。"
                    f"如有疑问请致电{phone}。"
                )
            ],
            "ko-KR": [
                lambda site, ref, phone, at: (
                    f"{site}: 참조번호 {ref} 알림은 더 이상 필요하지 않아 관리사무소에서 "
                    f"종료했습니다. 더 하실 일은 없습니다. 문의: {phone}"
                )
            ],
        },
    }
    return _fit(
        variants[wording][pick_language(lang)],
        {"ref": reference, "phone": office_phone, "at": at},
        {"site": site_name},
    )


# --- Staff notices about visits and consents ----------------------------------------------------

StaffNotice = Literal[
    "visit_reminder",
    "visit_overdue",
    "visit_missed",
    "visit_not_home",
    "visit_concern",
    "consent_review",
    "consent_unverified",
    "consent_review_contacts",
    "consent_unverified_contacts",
]

_STAFF_NOTICES: dict[StaffNotice, dict[Language, str]] = {
    "visit_reminder": {
        "en": "{site}: reminder, {kind} due {when}. Details: {link}",
        "zh-CN": "{site}：提醒，{when}有{kind}。详情：{link}",
        "ko-KR": "{site}: 알림, {when} {kind} 예정. 상세: {link}",
    },
    "visit_overdue": {
        "en": "{site}: a {kind} due {when} is overdue, nothing was recorded. Details: {link}",
        "zh-CN": "{site}：{when}的{kind}已逾期，尚无记录。详情：{link}",
        "ko-KR": "{site}: {when} {kind}이(가) 기록 없이 지났습니다. 상세: {link}",
    },
    "visit_missed": {
        "en": "{site}: a {kind} due {when} was missed. Please follow up. Details: {link}",
        "zh-CN": "{site}：{when}的{kind}已错过，请跟进。详情：{link}",
        "ko-KR": "{site}: {when} {kind}을(를) 놓쳤습니다. 확인해 주세요. 상세: {link}",
    },
    "visit_not_home": {
        "en": "{site}: a resident was not home at two visits in a row ({when}). Details: {link}",
        "zh-CN": "{site}：居民连续两次探访不在家（{when}）。详情：{link}",
        "ko-KR": "{site}: 입주민이 두 번 연속 방문 때 부재중이었습니다({when}). 상세: {link}",
    },
    "visit_concern": {
        "en": "{site}: a {kind} ({when}) raised a concern that needs staff. Details: {link}",
        "zh-CN": "{site}：{when}的{kind}发现需要工作人员跟进的情况。详情：{link}",
        "ko-KR": "{site}: {when} {kind}에서 직원 확인이 필요한 사항이 있습니다. 상세: {link}",
    },
    "consent_review": {
        "en": "{site}: a resident's consent is due for review on {when}. Details: {link}",
        "zh-CN": "{site}：有居民的同意书需在{when}前复核。详情：{link}",
        "ko-KR": "{site}: 입주민 동의서 검토 기한이 {when}입니다. 상세: {link}",
    },
    "consent_unverified": {
        "en": "{site}: a resident's consent review was due {when}; it is now unverified. {link}",
        "zh-CN": "{site}：有居民的同意书已于{when}到期未复核，现为未核实。{link}",
        "ko-KR": "{site}: 입주민 동의서 검토 기한({when})이 지나 미확인 상태입니다. {link}",
    },
    # The same, when the site has family contacts not verified (welfare/residents/
    # contact_checks.py): the link opens the signed-in list that names them.
    "consent_review_contacts": {
        "en": "{site}: a resident's consent is due for review on {when}. "
        "{count} contacts not verified: {link}",
        "zh-CN": "{site}：有居民的同意书需在{when}前复核。{count}位联系人未验证：{link}",
        "ko-KR": "{site}: 입주민 동의서 검토 기한이 {when}입니다. 미확인 연락처 {count}명: {link}",
    },
    "consent_unverified_contacts": {
        "en": "{site}: a resident's consent review was due {when}; it is now unverified. "
        "{count} contacts not verified: {link}",
        "zh-CN": "{site}：有居民的同意书已于{when}到期未复核，现为未核实。"
        "{count}位联系人未验证：{link}",
        "ko-KR": "{site}: 입주민 동의서 검토 기한({when})이 지나 미확인 상태입니다. "
        "미확인 연락처 {count}명: {link}",
    },
}

# Compact wordings, tried when the full one does not fit (an English text turns UCS-2 with a
# Chinese or Korean site name): the count and the link are never cut.
_STAFF_NOTICES_COMPACT: dict[StaffNotice, dict[Language, str]] = {
    "consent_review_contacts": {
        "en": "{site}: consent review {when}. {count} contacts not verified: {link}",
        "zh-CN": "{site}：同意书{when}待复核，{count}位联系人未验证：{link}",
        "ko-KR": "{site}: 동의서 검토 {when}, 미확인 연락처 {count}명: {link}",
    },
    "consent_unverified_contacts": {
        "en": "{site}: consent overdue {when}. {count} contacts not verified: {link}",
        "zh-CN": "{site}：同意书{when}逾期，{count}位联系人未验证：{link}",
        "ko-KR": "{site}: 동의서 기한 {when} 지남, 미확인 연락처 {count}명: {link}",
    },
}

_VISIT_KIND_WORDS: dict[str, dict[Language, str]] = {
    "home_visit": {"en": "home visit", "zh-CN": "上门探访", "ko-KR": "방문"},
    "phone_checkin": {"en": "phone check-in", "zh-CN": "电话问候", "ko-KR": "안부 전화"},
    "automated_call": {"en": "check-in call", "zh-CN": "自动问候电话", "ko-KR": "자동 안부 전화"},
}


def staff_notice_sms(
    lang: str | None,
    notice: StaffNotice,
    *,
    site_name: str,
    kind: str,
    when: str,
    link: str,
    count: int | str = 0,
) -> str:
    """To staff or a manager: no name, unit or note, only what happened, when, and a link to
    sign in for the rest. `count`: how many contacts are not verified, for the `_contacts`
    notices."""
    language = pick_language(lang)
    templates = [_STAFF_NOTICES[notice][language]]
    if notice in _STAFF_NOTICES_COMPACT:
        templates.append(_STAFF_NOTICES_COMPACT[notice][language])
    kind_words = _VISIT_KIND_WORDS.get(kind, _VISIT_KIND_WORDS["home_visit"])[language]

    def wording(template: str) -> Render:
        def render(site: str, when: str, link: str) -> str:
            return template.format(site=site, kind=kind_words, when=when, link=link, count=count)

        return render

    return _fit([wording(t) for t in templates], {"when": when, "link": link}, {"site": site_name})


# --- Voice -------------------------------------------------------------------------------------

# <Say> language codes: Twilio's ids for British English, Mandarin (China) and Korean.
SAY_LANGUAGE: dict[Language, str] = {"en": "en-GB", "zh-CN": "cmn-CN", "ko-KR": "ko-KR"}


def say_language(lang: str | None) -> str:
    return SAY_LANGUAGE[pick_language(lang)]


def _spoken(value: str) -> str:
    return _clip(_clean(value), MAX_SPOKEN_FIELD)


def found_call_text(lang: str | None, *, site_name: str, location: str) -> str:
    """Read out on the call before the keypress prompt (`call_prompt(lang, "found")`)."""
    site, place = _spoken(site_name), _spoken(location)
    language = pick_language(lang)
    if language == "zh-CN":
        return (
            f"您好，这里是{site}。您登记为其紧急联系人的居民已在{place}被找到，"
            "现由我们的工作人员陪同。"
        )
    if language == "ko-KR":
        return (
            f"안녕하세요, {site}입니다. 비상연락처로 등록하신 입주민을 {place}에서 찾았으며, "
            "지금 직원이 함께 있습니다."
        )
    return (
        f"Hello, this is {site}. The resident you are an emergency contact for has been found "
        f"at {place}, and is with our staff."
    )


def checkin_call_text(lang: str | None, *, site_name: str) -> str:
    """The automated check-in call's greeting; the prompt is `call_prompt(lang, "checkin")`
    ("if you are well, press 1; to speak to the office, press 2")."""
    site = _spoken(site_name)
    language = pick_language(lang)
    if language == "zh-CN":
        return f"您好，这里是{site}的例行问候电话。"
    if language == "ko-KR":
        return f"안녕하세요, {site}에서 드리는 안부 확인 전화입니다."
    return f"Hello, this is your check-in call from {site}."


def contact_test_call_text(lang: str | None, *, site_name: str) -> str:
    """A test call to a family contact, read out before `call_prompt(lang, "contact_test")`
    ("press 1 to confirm this number")."""
    site = _spoken(site_name)
    language = pick_language(lang)
    if language == "zh-CN":
        return f"这是{site}的测试电话，并无事情发生。"
    if language == "ko-KR":
        return f"{site}의 테스트 전화입니다. 아무 일도 없습니다."
    return f"This is a test from {site}. Nothing has happened."


def welfare_concern_call_text(lang: str | None, *, site_name: str) -> str:
    """Read out before `call_prompt(lang, "concern")`."""
    site = _spoken(site_name)
    language = pick_language(lang)
    if language == "zh-CN":
        return f"您好，这里是{site}。今天的例行问候未能联系上您登记为其紧急联系人的居民。"
    if language == "ko-KR":
        return (
            f"안녕하세요, {site}입니다. 오늘 안부 확인 때 비상연락처로 등록하신 입주민과 "
            "연락이 닿지 않았습니다."
        )
    return (
        f"Hello, this is {site}. We could not reach the resident you are an emergency contact "
        "for at today's check-in."
    )


def manager_escalation_call_text(lang: str | None, *, site_name: str, reference: str) -> str:
    """Read out to the duty manager before `call_prompt(lang, "found")`."""
    site, ref = _spoken(site_name), _spoken(reference)
    language = pick_language(lang)
    if language == "zh-CN":
        return f"这里是{site}。事件{ref}仍无紧急联系人确认，请您接手处理。"
    if language == "ko-KR":
        return f"{site}입니다. 사건 {ref}에 대해 확인한 비상연락처가 없습니다. 대응을 맡아 주세요."
    return (
        f"This is {site}. No emergency contact has confirmed for incident {ref}. "
        "Please take over the response."
    )


def call_prompt(lang: str | None, purpose: CallPurpose = "found") -> str:
    language = pick_language(lang)
    prompts: dict[CallPurpose, dict[Language, str]] = {
        "found": {
            "en": "If you are coming, press 1. To be connected to the office, press 2.",
            "zh-CN": "如果您会前来，请按1。如需转接管理处，请按2。",
            "ko-KR": "오실 수 있으면 1번을, 관리사무소와 연결하시려면 2번을 눌러 주세요.",
        },
        "concern": {
            "en": "If you will check on them, press 1. To be connected to the office, press 2.",
            "zh-CN": "如果您会跟进，请按1。如需转接管理处，请按2。",
            "ko-KR": "확인해 주실 수 있으면 1번을, 관리사무소와 연결하시려면 2번을 눌러 주세요.",
        },
        "checkin": {
            "en": "If you are well, press 1. To speak to the office, press 2.",
            "zh-CN": "如果您一切安好，请按1。如需与管理处通话，请按2。",
            "ko-KR": "잘 지내고 계시면 1번을, 관리사무소와 통화하시려면 2번을 눌러 주세요.",
        },
        "contact_test": {
            "en": "Press 1 to confirm this number.",
            "zh-CN": "请按1确认此号码。",
            "ko-KR": "이 번호를 확인하시려면 1번을 눌러 주세요.",
        },
    }
    return prompts[purpose][language]


def call_thanks(lang: str | None, purpose: CallPurpose = "found") -> str:
    language = pick_language(lang)
    texts: dict[CallPurpose, dict[Language, str]] = {
        "found": {
            "en": "Thank you. Our staff will wait with the resident until you arrive. Goodbye.",
            "zh-CN": "谢谢您。我们的工作人员会陪同居民等您到来。再见。",
            "ko-KR": "감사합니다. 도착하실 때까지 직원이 입주민과 함께 기다리겠습니다. "
            "안녕히 계세요.",
        },
        "concern": {
            "en": "Thank you. Please let the office know how they are. Goodbye.",
            "zh-CN": "谢谢您。请把居民的情况告知管理处。再见。",
            "ko-KR": "감사합니다. 확인하신 뒤 관리사무소에 알려 주세요. 안녕히 계세요.",
        },
        "checkin": {
            "en": "Thank you, we are glad you are well. Goodbye.",
            "zh-CN": "谢谢您，很高兴知道您一切安好。再见。",
            "ko-KR": "감사합니다. 잘 지내고 계셔서 다행입니다. 안녕히 계세요.",
        },
        "contact_test": {
            "en": "Thank you, this number is confirmed. Goodbye.",
            "zh-CN": "谢谢您，此号码已确认。再见。",
            "ko-KR": "감사합니다. 이 번호가 확인되었습니다. 안녕히 계세요.",
        },
    }
    return texts[purpose][language]


def call_connecting(lang: str | None) -> str:
    return {
        "en": "Connecting you to the office now.",
        "zh-CN": "正在为您转接管理处。",
        "ko-KR": "관리사무소로 연결해 드리겠습니다.",
    }[pick_language(lang)]


def call_after_office(lang: str | None) -> str:
    """Said when the `<Dial>` to the office ends, whether or not the office answered."""
    return {
        "en": "If the office could not be reached, please call it directly. Goodbye.",
        "zh-CN": "如未能接通管理处，请您直接致电管理处。再见。",
        "ko-KR": "관리사무소와 연결되지 않았다면 관리사무소로 직접 전화해 주세요. 안녕히 계세요.",
    }[pick_language(lang)]


def call_not_understood(lang: str | None) -> str:
    return {
        "en": "Sorry, that key is not an option.",
        "zh-CN": "抱歉，无此选项。",
        "ko-KR": "죄송합니다. 잘못 누르셨습니다.",
    }[pick_language(lang)]


def call_goodbye(lang: str | None) -> str:
    return {
        "en": "We did not receive an answer. The office will try to reach you again. Goodbye.",
        "zh-CN": "我们没有收到您的回应，管理处会再与您联系。再见。",
        "ko-KR": "응답이 없어 통화를 종료합니다. 관리사무소에서 다시 연락드리겠습니다. "
        "안녕히 계세요.",
    }[pick_language(lang)]


def _spelt(value: str) -> str:
    """A reference or a phone number read out one character at a time ("A 7 K 2"), not as a
    word or one big number; a phone's groups ("2345 6789") with a pause between them."""
    groups = re.split(r"[\s\-()]+", _clean(value).replace("+", " "))
    return ", ".join(" ".join(group) for group in groups if group)


def voicemail_text(lang: str | None, *, reference: str, office_phone: str | None) -> str:
    """Left on an answering machine: the reference and the office's phone only. A voicemail
    may be heard by anyone with the phone, so no name, no place and nothing about health; the
    caller reaches the office, which knows the rest."""
    ref = _spelt(_spoken(reference))
    phone = _spelt(_spoken(office_phone)) if office_phone else ""
    language = pick_language(lang)
    if language == "zh-CN":
        call = f"请尽快致电管理处：{phone}。" if phone else "请尽快致电管理处。"
        return f"您好，这是一条紧急留言，关于您登记为其紧急联系人的居民。编号{ref}。{call}再见。"
    if language == "ko-KR":
        call = (
            f"관리사무소 {phone}번으로 바로 전화해 주세요."
            if phone
            else "관리사무소로 바로 전화해 주세요."
        )
        return (
            f"안녕하세요, 비상연락처로 등록하신 입주민에 관한 긴급 메시지입니다. "
            f"참조 번호 {ref}. {call} 안녕히 계세요."
        )
    call = (
        f"Please call the office on {phone} as soon as you can."
        if phone
        else ("Please call the office as soon as you can.")
    )
    return (
        "Hello, this is an urgent message about a resident you are an emergency contact for. "
        f"Reference {ref}. {call} Goodbye."
    )


# --- Replies -----------------------------------------------------------------------------------

_CONFIRM_WORDS = frozenset(
    {
        # English
        "1",
        "yes",
        "y",
        "yeah",
        "yep",
        "ok",
        "okay",
        "coming",
        "on my way",
        "i'm coming",
        "i am coming",
        # Chinese (Simplified, and the Traditional forms a zh-HK/zh-TW contact types)
        "是",
        "是的",
        "好",
        "好的",
        "可以",
        "来",
        "我来",
        "马上来",
        "收到",
        "确认",
        "來",
        "我來",
        "馬上來",
        "確認",
        # Korean
        "네",
        "넵",
        "예",
        "응",
        "알겠습니다",
        "알겠어요",
        "확인",
        "가요",
        "갈게요",
        "지금 가요",
        "지금 갈게요",
    }
)
# Twilio's own keywords (its default opt-out handling): Twilio acts on them itself and still
# passes the message on to the inbound-SMS webhook.
TWILIO_OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
TWILIO_OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
TWILIO_HELP_WORDS = frozenset({"help", "info"})
# "Unsubscribe" in the other template languages: Twilio does not act on these, we do.
_LOCAL_OPT_OUT_WORDS = frozenset({"退订", "取消订阅", "退訂", "수신거부", "수신 거부"})


def _words(text: str) -> str:
    """Width-folded (NFKC), case-folded, apostrophes dropped ("I'm" -> "im"), punctuation,
    symbols and control characters as spaces, single spaces, trimmed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("'", "").replace("\u2019", "")
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PSCZ" else ch for ch in text)
    return " ".join(spaced.split())


# Any run of confirmation words, spaces optional ("ok on my way", "好的马上来", "네 지금 가요").
_CONFIRM_PATTERN = re.compile(
    r"(?:{alt})(?:\s*(?:{alt}))*".format(
        alt="|".join(
            r"\s*".join(re.escape(part) for part in _words(word).split(" "))
            for word in sorted(_CONFIRM_WORDS, key=len, reverse=True)
        )
    )
)


def classify_reply(text: str) -> Reply | None:
    """What an inbound SMS means: "confirm" | "stop" | "start" | "help" | None.

    Trimmed, case-, width- and punctuation-insensitive ("ＯＫ!", " Yes. ", "好的。").
    - "confirm": "1", "yes", "ok", "coming", "on my way" and the Chinese and Korean words in
      `_CONFIRM_WORDS`, alone or strung together ("ok, on my way", "好的马上来"). Anything
      else in the text ("not coming", "来不了", "못 가요") makes it no confirmation.
    - "stop": Twilio's opt-out keywords (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT,
      REVOKE) and "unsubscribe" in Chinese and Korean (退订, 수신거부).
    - "start": START and UNSTOP. "YES" is a confirmation here, not "start", although Twilio
      also re-subscribes a contact who sends YES: see `twilio_opt_change`.
    - "help": HELP and INFO.
    """
    words = _words(text)
    if not words:
        return None
    if words in TWILIO_OPT_OUT_WORDS or words in _LOCAL_OPT_OUT_WORDS:
        return "stop"
    if words in {"start", "unstop"}:
        return "start"
    if words in TWILIO_HELP_WORDS:
        return "help"
    if _is_confirmation(words):
        return "confirm"
    return None


def _is_confirmation(words: str) -> bool:
    return _CONFIRM_PATTERN.fullmatch(words) is not None


def twilio_opt_change(text: str) -> Literal["stop", "start"] | None:
    """How Twilio's default opt-out handling reads this inbound SMS.

    Twilio blocks further SMS to a contact who sent an opt-out keyword (a later send fails with
    21610) and unblocks on START, UNSTOP or YES. The inbound webhook mirrors this onto the
    contact's opt-out state so the escalation never plans an SMS Twilio will refuse, and a
    contact who confirms with "yes" is known to be reachable again.
    """
    words = _words(text)
    if words in TWILIO_OPT_OUT_WORDS:
        return "stop"
    if words in TWILIO_OPT_IN_WORDS:
        return "start"
    return None
