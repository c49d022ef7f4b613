"""Bulk import of accounts: CSV or JSON rows of ``username,email[,admin]``,
parsed and checked one by one. Pure: :func:`parse_import` gives the rows to
create and the refused ones with their reasons; the store then refuses the
rows whose name or email an existing account has, and creates the others in
one transaction.

CSV: one account a line, an optional header line ``username,email,admin``.
JSON: a list of ``{"username": ..., "email": ..., "admin": false}`` objects
(or of ``[username, email, admin]`` lists).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from karvdash_hub.core.errors import KarvdashError
from karvdash_hub.core.settings import USERNAME_PATTERN

EMAIL = re.compile(r"^[A-Za-z0-9.+_-]+@[A-Za-z0-9._-]+\.[A-Za-z]{2,}\Z")
MAX_EMAIL = 128  # the users_info column
MAX_ROWS = 20_000
MAX_BYTES = 4 * 1024 * 1024
TRUE = {"true", "yes", "1", "y"}
FALSE = {"false", "no", "0", "n", ""}


@dataclass(frozen=True)
class ImportRow:
    line: int  # 1-based line (CSV) or item number (JSON)
    username: str
    email: str
    admin: bool = False


@dataclass(frozen=True)
class Refusal:
    line: int
    username: str
    reason: str

    def as_json(self) -> dict:
        return {"line": self.line, "username": self.username, "reason": self.reason}


def email_problem(email: str) -> str:
    """Why ``email`` is not an address an account can have ('' if it can)."""
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        return "Enter a valid email address."
    return ""


def _admin_flag(value) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    return None


def _csv_items(text: str) -> list[tuple[int, list]]:
    reader = csv.reader(io.StringIO(text), strict=True)
    items = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            # spaces around a comma are the file's layout, not part of a name
            items.append((reader.line_num, [cell.strip() for cell in cells]))
    except csv.Error as error:
        raise KarvdashError(400, f"The CSV cannot be read at line {reader.line_num}: {error}.") from None
    if items and [cell.strip().lower() for cell in items[0][1][:2]] == ["username", "email"]:
        items = items[1:]
    return items


def _json_items(text: str) -> list[tuple[int, object]]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise KarvdashError(400, f"The JSON cannot be read: {error}.") from None
    if isinstance(data, dict):
        data = data.get("accounts")
    if not isinstance(data, list):
        raise KarvdashError(400, 'The JSON must be a list of accounts (or {"accounts": [...]}).')
    return list(enumerate(data, start=1))


def _fields(item) -> tuple[object, object, object] | None:
    if isinstance(item, dict):
        return item.get("username"), item.get("email"), item.get("admin", False)
    if isinstance(item, list) and 2 <= len(item) <= 3:
        return item[0], item[1], item[2] if len(item) == 3 else False
    return None


def parse_import(text: str, kind: str) -> tuple[list[ImportRow], list[Refusal]]:
    """The rows of an import (``kind`` ``csv`` or ``json``) and the refused
    ones. A name or email given twice keeps its first row."""
    if len(text.encode()) > MAX_BYTES:
        raise KarvdashError(413, f"An import holds at most {MAX_BYTES // (1024 * 1024)} MiB.")
    if kind not in ("csv", "json"):
        raise KarvdashError(400, "An import is CSV or JSON.")
    items = _csv_items(text) if kind == "csv" else _json_items(text)
    if not items:
        raise KarvdashError(400, "The import holds no accounts.")
    if len(items) > MAX_ROWS:
        raise KarvdashError(413, f"An import holds at most {MAX_ROWS} accounts, not {len(items)}.")
    rows: list[ImportRow] = []
    refused: list[Refusal] = []
    names: set[str] = set()
    emails: set[str] = set()
    for line, item in items:
        fields = _fields(item)
        if fields is None:
            refused.append(Refusal(line, "", "A row has a username, an email and optionally admin (true or false)."))
            continue
        username, email, admin = fields
        name = username if isinstance(username, str) else ""
        if not isinstance(username, str) or not re.match(USERNAME_PATTERN, username):
            refused.append(Refusal(line, name, "A username has 1 to 32 characters, lowercase letters and digits only."))
            continue
        if not isinstance(email, str) or email_problem(email.strip()):
            refused.append(Refusal(line, name, "Enter a valid email address."))
            continue
        email = email.strip()
        flag = _admin_flag(admin)
        if flag is None:
            refused.append(Refusal(line, name, f"admin is true or false, not {admin!r}."))
            continue
        if name in names:
            refused.append(Refusal(line, name, f"The username {name!r} is given twice in the import."))
            continue
        if email.lower() in emails:
            refused.append(Refusal(line, name, "This email address is given twice in the import."))
            continue
        names.add(name)
        emails.add(email.lower())
        rows.append(ImportRow(line, name, email, flag))
    return rows, refused
