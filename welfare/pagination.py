from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")


def paginate(
    session: Session, query: SelectOfScalar[T], *, limit: int, offset: int, order_by: Any
) -> tuple[list[T], int]:
    total = session.exec(select(func.count()).select_from(query.order_by(None).subquery())).one()
    rows = session.exec(query.order_by(*order_by).offset(offset).limit(limit)).all()
    return list(rows), total
