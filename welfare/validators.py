"""Checks that models of several domains share (a module beside the folders, so no domain
imports another for them)."""

from __future__ import annotations

from typing import Any


def reject_nul_characters(data: Any) -> Any:
    """A `mode="before"` model check: no real text holds NUL, and PostgreSQL cannot store it."""

    def has_nul(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, dict):
            return any(has_nul(v) for v in value.values())
        if isinstance(value, list | tuple):
            return any(has_nul(v) for v in value)
        return False

    if has_nul(data):
        raise ValueError("text must not contain NUL (\\x00) characters")
    return data
