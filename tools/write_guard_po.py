"""Write api/translations/zh_CN/LC_MESSAGES/guard.po from a {msgid: msgstr} module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

PO = Path(__file__).resolve().parents[1] / "api/translations/zh_CN/LC_MESSAGES/guard.po"

spec = importlib.util.spec_from_file_location("zh", sys.argv[1])
assert spec and spec.loader
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

catalog = Catalog(locale="zh_CN", project="welfare", version="0.1", fuzzy=False)
if PO.exists():
    with PO.open("rb") as f:
        for message in read_po(f, locale="zh_CN"):
            if message.id:
                catalog.add(message.id, message.string)
for msgid, msgstr in module.ZH.items():
    catalog.add(msgid, msgstr)
with PO.open("wb") as f:
    write_po(f, catalog, width=100, omit_header=False, sort_output=True)
