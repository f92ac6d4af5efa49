"""Domain models built from page forms: a value the model refuses is the person's input, so it
comes back as InvalidInput naming the field (the page shows it beside the form, 422), never as
a 500 from inside the route."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from welfare.errors import InvalidInput

Model = TypeVar("Model", bound=BaseModel)


def form_model(model: type[Model], **values: Any) -> Model:
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = tuple(str(part) for part in first["loc"]) or ("form",)
        raise InvalidInput(where, first["msg"]) from None
