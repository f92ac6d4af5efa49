"""Domain models built from page forms: a value the model refuses is the person's input, so it
comes back as InvalidInput naming the field (the page shows it beside the form, 422), never as
a 500 from inside the route."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from api.pages.i18n import N_, gettext
from welfare.errors import InvalidInput
from welfare.phones import InvalidPhone, PhoneProblem

Model = TypeVar("Model", bound=BaseModel)

# Text with NUL (or another control character a database refuses), in the person's words.
NUL_TEXT = N_(
    "The text holds an invisible control character, often copied from another program: type"
    " it again."
)


# What is wrong with a value the models refused, by pydantic's error type, and what to give
# instead: the JSON API answers these words (in English), the pages in the reader's language.
# Pydantic's own English ("Input should be a valid UUID, invalid character: found `m` at 0")
# says only that the value is wrong.
TOO_LONG = N_("This is too long: shorten it to at most %(limit)s characters.")
_WHOLE_NUMBER = N_("Give a whole number, such as 3.")
_NUMBER = N_("Give a number, such as 1.5.")
_UUID = N_("Give an id as the service gave it, such as 3f2b1c4e-8d6a-4b1e-9c3f-2a1b0c9d8e7f.")
_DATE = N_("Give a date like 2026-12-31.")
_DATETIME = N_("Give a date and time with its timezone, like 2026-12-31T09:30:00+08:00.")
_TIME = N_("Give a time like 09:30.")
_LIST = N_('Give a list, such as ["a", "b"].')
_OBJECT = N_("Give an object with named fields (JSON between { and }).")
_CHOICE = N_("Choose one of %(expected)s.")
VALUE_PROBLEMS: dict[str, str] = {
    "missing": N_("Required: fill this in."),
    "extra_forbidden": N_("Not a field this accepts: remove it or check its spelling."),
    "string_type": N_("Give text here (in JSON, between quotes)."),
    "string_too_short": N_("Too short: give at least %(min_length)s characters."),
    "string_too_long": TOO_LONG,
    "string_pattern_mismatch": N_("Not in the expected form: it must match %(pattern)s."),
    "int_parsing": _WHOLE_NUMBER,
    "int_type": _WHOLE_NUMBER,
    "int_from_float": _WHOLE_NUMBER,
    "float_parsing": _NUMBER,
    "float_type": _NUMBER,
    "decimal_parsing": _NUMBER,
    "bool_parsing": N_("Give true or false."),
    "bool_type": N_("Give true or false."),
    "uuid_parsing": _UUID,
    "uuid_type": _UUID,
    "date_parsing": _DATE,
    "date_type": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "datetime_parsing": _DATETIME,
    "datetime_type": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_object_invalid": _DATETIME,
    "timezone_aware": N_(
        "Give the timezone too, like 2026-12-31T09:30:00+08:00 or 2026-12-31T01:30:00Z."
    ),
    "time_parsing": _TIME,
    "time_type": _TIME,
    "enum": _CHOICE,
    "literal_error": _CHOICE,
    "greater_than_equal": N_("Give %(ge)s or more."),
    "greater_than": N_("Give more than %(gt)s."),
    "less_than_equal": N_("Give %(le)s or less."),
    "less_than": N_("Give less than %(lt)s."),
    "too_short": N_("Give at least %(min_length)s of them."),
    "too_long": N_("Give at most %(max_length)s of them."),
    "list_type": _LIST,
    "tuple_type": _LIST,
    "set_type": _LIST,
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "json_invalid": N_("The body is not valid JSON: check its quotes, commas and brackets."),
    "url_parsing": N_("Give a web address starting with https://."),
    "url_scheme": N_("Give a web address starting with https://."),
}
_NOT_EMPTY = N_("Must not be empty: type something.")


def value_problem(language: str, error: Mapping[str, Any]) -> str:
    """What is wrong with one value pydantic refused (an item of `ValidationError.errors()`)
    and how to put it right. A model's own check (a `ValueError` it raised) already says so,
    in English: its words are kept, without pydantic's "Value error, " in front."""
    kind = str(error.get("type", ""))
    ctx = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    ctx.setdefault("limit", ctx.get("max_length", ""))
    if kind == "string_too_short" and ctx.get("min_length") == "1":
        return gettext(language, _NOT_EMPTY)
    template = VALUE_PROBLEMS.get(kind)
    if template is None:
        return (
            str(error.get("msg", ""))
            .removeprefix("Value error, ")
            .removeprefix("Assertion failed, ")
        )
    try:
        return gettext(language, template) % ctx
    except (KeyError, ValueError):  # a context without the value the words name
        return str(error.get("msg", ""))


def page_value_problem(language: str, error: Mapping[str, Any]) -> str:
    """`value_problem` for a page's reader: a model's refusal of a NUL character (its words
    name the byte, for the API's readers) is said as people see it."""
    if error.get("type") == "value_error" and "NUL" in str(error.get("msg", "")):
        return gettext(language, NUL_TEXT)
    return value_problem(language, error)


class FormValueRefused(InvalidInput):
    """A form value a model refused; keeps pydantic's error so a page can say it in its
    reader's language (`value_problem`)."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        where = tuple(str(part) for part in error["loc"]) or ("form",)
        super().__init__(where, value_problem("en", error))
        self.error = error

    def words(self, language: str) -> str:
        return page_value_problem(language, self.error)


def typed_values(given: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A form as typed, to show again: the named fields of a handler's parameters (its
    `locals()`). The fields stay in each handler's signature, so that FastAPI lists a wrong path
    id before a wrong field, as it does for every other form."""
    return {field: given[field] for field in fields}


def form_model(model: type[Model], **values: Any) -> Model:
    try:
        return model(**values)
    except ValidationError as exc:
        raise FormValueRefused(exc.errors()[0]) from None


# What a page says about a refused phone number: what is wrong and a number to copy.
PHONE_MESSAGES = {
    PhoneProblem.missing: N_("Type the phone number, e.g. %(example)s."),
    PhoneProblem.letters: N_(
        "Letters are not allowed in a phone number, not even for an extension. Type only the"
        " digits, e.g. %(example)s."
    ),
    PhoneProblem.characters: N_(
        "Use only digits, spaces and + - ( ) . in a phone number, e.g. %(example)s."
    ),
    PhoneProblem.unparseable: N_("This is not a phone number. Type the digits, e.g. %(example)s."),
    PhoneProblem.invalid: N_(
        "Not a valid phone number for this site's region. Check the number of digits, or start"
        " with + and the country code, e.g. %(example)s."
    ),
}


def phone_error(language: str, exc: InvalidPhone) -> str:
    """The refused phone number's problem in the reader's language."""
    return gettext(language, PHONE_MESSAGES[exc.problem]) % {"example": exc.example}


def refused_words(language: str, exc: Exception, hints: Mapping[str, str]) -> list[str]:
    """One message a refused field, in the reader's language: what is wrong with a refused
    phone number (`phone_error`), else the page's own hint for the field, else what is wrong
    with the value (`value_problem`); a domain refusal of a field without a hint keeps the
    domain's words."""
    if isinstance(exc, InvalidPhone):
        return [phone_error(language, exc)]
    found: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            hint = hints.get(field)
            found.setdefault(
                field, gettext(language, hint) if hint else value_problem(language, error)
            )
    elif isinstance(exc, InvalidInput):
        field = str(exc.loc[-1]) if exc.loc else ""
        hint = hints.get(field)
        found[field] = gettext(language, hint) if hint else exc.message
    return list(found.values()) or [gettext(language, "Please check what you entered.")]
