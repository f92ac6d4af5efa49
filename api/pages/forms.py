"""Domain models built from page forms: a value the model refuses is the person's input, so it
comes back as InvalidInput naming the field (the page shows it beside the form, 422), never as
a 500 from inside the route."""

from __future__ import annotations

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


def form_model(model: type[Model], **values: Any) -> Model:
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = tuple(str(part) for part in first["loc"]) or ("form",)
        raise InvalidInput(where, first["msg"]) from None


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
