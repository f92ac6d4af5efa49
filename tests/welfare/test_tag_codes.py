"""The code printed on a tag: its shape, forgiving reading, and the check character."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from welfare.tags import codes

PRINTED = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$")

bodies = st.text(
    alphabet=codes.ALPHABET, min_size=codes.RANDOM_LENGTH, max_size=codes.RANDOM_LENGTH
)


def whole(body: str) -> str:
    return body + codes.check_character(body)


@st.composite
def typed_loosely(draw: st.DrawFn, canonical: str) -> str:
    """The code as someone might type it: any case, spaces and dashes anywhere, O for 0, I or L
    for 1."""
    out = []
    for ch in canonical:
        if ch == "0":
            ch = draw(st.sampled_from(["0", "O", "o"]))
        elif ch == "1":
            ch = draw(st.sampled_from(["1", "I", "i", "L", "l"]))
        elif draw(st.booleans()):
            ch = ch.lower()
        out.append(draw(st.sampled_from(["", "", " ", "-", " - ", "  "])) + ch)
    return draw(st.sampled_from(["", " "])) + "".join(out) + draw(st.sampled_from(["", " \n"]))


def test_a_new_code_is_three_groups_of_five_from_the_unambiguous_alphabet() -> None:
    seen = {codes.new_code() for _ in range(200)}
    assert len(seen) == 200
    for code in seen:
        assert PRINTED.match(code), code
        assert codes.is_valid(code.replace("-", ""))
    assert set(codes.ALPHABET).isdisjoint("ILOU")
    # 14 random characters of 5 bits: at least the 64 random bits asked for.
    assert codes.RANDOM_LENGTH * 5 >= 64


@given(bodies.flatmap(lambda body: st.tuples(st.just(whole(body)), typed_loosely(whole(body)))))
def test_a_code_typed_loosely_reads_back_as_printed(case: tuple[str, str]) -> None:
    canonical, typed = case
    read = codes.read_typed(typed)
    assert read.printed == codes.format_code(canonical)
    assert read.printed in read.forms and not read.mistyped
    assert codes.normalise(codes.format_code(canonical)) == canonical


@given(bodies, st.integers(0, codes.LENGTH - 1), st.sampled_from(codes.ALPHABET))
def test_the_check_catches_every_single_substitution(body: str, at: int, other: str) -> None:
    code = whole(body)
    if code[at] == other:
        return
    wrong = code[:at] + other + code[at + 1 :]
    assert not codes.is_valid(wrong)
    read = codes.read_typed(codes.format_code(wrong))
    assert read.mistyped and read.printed is None


@given(bodies, st.integers(0, codes.LENGTH - 2))
def test_the_check_catches_every_adjacent_transposition(body: str, at: int) -> None:
    code = whole(body)
    if code[at] == code[at + 1]:
        return
    swapped = code[:at] + code[at + 1] + code[at] + code[at + 2 :]
    assert not codes.is_valid(swapped)
    assert codes.read_typed(swapped.lower()).mistyped


def test_every_substitution_and_transposition_of_one_code_exhaustively() -> None:
    code = codes.new_code().replace("-", "")
    for at in range(codes.LENGTH):
        for other in codes.ALPHABET:
            if other != code[at]:
                assert not codes.is_valid(code[:at] + other + code[at + 1 :]), (at, other)
        if at + 1 < codes.LENGTH and code[at] != code[at + 1]:
            assert not codes.is_valid(code[:at] + code[at + 1] + code[at] + code[at + 2 :])


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not-a-real-code-at-all",
        "x" * 65,
        "Zq3r_-8kT0bNw9LmPa2vXg",  # a URL-safe token, as tags were issued before
    ],
)
def test_text_that_is_not_a_printed_code_is_looked_up_as_typed(text: str) -> None:
    read = codes.read_typed(text)
    assert read.printed is None and not read.mistyped
    assert read.forms == ((text.strip(),) if text.strip() and len(text) <= 64 else ())


def test_an_old_token_that_reads_as_fifteen_letters_and_digits_is_not_mistyped() -> None:
    token = "ab-cd-ef-gh-jk-mn-pq-r"  # 22 URL-safe characters, 7 of them dashes
    assert len(token) == 22 and len(codes.normalise(token)) == codes.LENGTH
    read = codes.read_typed(token)
    assert not read.mistyped and token in read.forms


def test_a_u_where_the_code_has_none_is_a_mistyped_code() -> None:
    code = codes.new_code()
    assert codes.read_typed("U" + code.replace("-", "")[1:]).mistyped


def test_reports_of_one_tag_count_together_however_it_is_typed() -> None:
    code = codes.new_code()
    assert codes.rate_key(code.lower().replace("-", " ")) == codes.rate_key(code) == code
    assert codes.rate_key(" old-Token_x ") == "old-Token_x"
