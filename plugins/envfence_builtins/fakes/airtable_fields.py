"""Field types of the fake Airtable: schema, validation, typecast, and what formulas see.

Followed: Airtable's field model (https://airtable.com/developers/web/api/field-model)
for each type's cell value and options, and "Update multiple records" /
"Create records" (https://airtable.com/developers/web/api/update-multiple-records)
for typecast: "Airtable will try to convert string values in a record's fields
object to the appropriate cell value ... on a best-effort basis". Without
typecast a value of the wrong shape is a 422 ``INVALID_VALUE_FOR_COLUMN``.

The types: ``singleLineText``, ``multilineText``, ``email``, ``url``,
``phoneNumber`` (text), ``number``, ``currency``, ``percent``, ``checkbox``,
``date``, ``dateTime``, ``singleSelect``, ``multipleSelects``,
``multipleAttachments`` and ``multipleRecordLinks``.
"""

from __future__ import annotations

import datetime as _dt
import math
import mimetypes
import posixpath
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from envfence.testing import HTTPError

from envfence_builtins.fakes.airtable_formulas import iso_milliseconds, parse_datetime, text

TEXT = {"singleLineText", "multilineText", "email", "url", "phoneNumber"}
NUMERIC = {"number", "currency", "percent"}
SELECTS = {"singleSelect", "multipleSelects"}
KNOWN = TEXT | NUMERIC | SELECTS | {"checkbox", "date", "dateTime", "multipleAttachments", "multipleRecordLinks"}

# Options that pyairtable's schema models require for these field types.
_DEFAULT_OPTIONS: dict[str, Any] = {
    "number": {"precision": 0},
    "currency": {"precision": 2, "symbol": "$"},
    "percent": {"precision": 0},
    "checkbox": {"color": "greenBright", "icon": "check"},
    "date": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}},
    "dateTime": {
        "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
        "timeFormat": {"name": "24hour", "format": "HH:mm"},
        "timeZone": "utc",
    },
    "multipleAttachments": {"isReversed": False},
}
_TRUE_TEXT = {"true", "1", "yes", "checked", "on", "x"}
_FALSE_TEXT = {"false", "0", "no", "unchecked", "off", ""}


def error(status: int, kind: str, message: str) -> HTTPError:
    """Airtable's error body: ``{"error": {"type", "message"}}``."""
    return HTTPError(status, {"error": {"type": kind, "message": message}})


def schema_field(spec: Mapping[str, Any], new_id: Callable[[str], str], linked_table_id: Callable[[str], str]) -> dict[str, Any]:
    """A field's schema from ``{"name", "type", "choices", "table"}`` (``table``: a linked record's table)."""
    kind = spec.get("type", "singleLineText")
    if kind not in KNOWN:
        raise ValueError(f"the fake Airtable has no field type {kind!r}; known: {', '.join(sorted(KNOWN))}")
    field: dict[str, Any] = {"id": spec.get("id") or new_id("fld"), "name": spec["name"], "type": kind}
    if kind in SELECTS:
        field["options"] = {"choices": [{"id": new_id("sel"), "name": c, "color": "blueLight2"} for c in spec.get("choices", [])]}
    elif kind == "multipleRecordLinks":
        field["options"] = {
            "linkedTableId": linked_table_id(spec["table"]),
            "isReversed": False,
            "prefersSingleRecordLink": False,
        }
    elif kind in _DEFAULT_OPTIONS:
        field["options"] = dict(spec.get("options") or _DEFAULT_OPTIONS[kind])
    return field


def is_empty(value: Any) -> bool:
    """Airtable leaves these out of its answers: no value, "", [], an unchecked checkbox.

    "List records": 'Returned records do not include any fields with "empty"
    values, e.g. "", [], or false' (hence pyairtable's ``CheckboxField``
    reads a missing checkbox as False). 0 and 0.0 are values and are kept.
    """
    return value is None or value is False or (isinstance(value, (str, list)) and not value)


class Cells:
    """Validates and typecasts written values for one base.

    :param new_id: makes an Airtable-shaped id from a prefix.
    :param table_by_id: the base's table with that id.
    :param create_record: ``(table, fields) -> record``, for typecast links.
    """

    def __init__(self, new_id: Callable[[str], str], table_by_id: Callable[[str], dict[str, Any]], create_record: Callable[..., dict[str, Any]]) -> None:
        self.new_id = new_id
        self.table_by_id = table_by_id
        self.create_record = create_record
        #: Every attachment written, by id (to keep one by ``{"id"}``).
        self.attachments: dict[str, dict[str, Any]] = {}

    def clean(self, field: dict[str, Any], value: Any, typecast: bool) -> Any:
        """The stored value for ``value`` written to ``field``; raises Airtable's 422."""
        if value is None:
            return None
        kind = field["type"]
        bad = error(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{field["name"]}" cannot accept the provided value')
        if kind in TEXT:
            if isinstance(value, str):
                return value.replace("\n", " ") if kind == "singleLineText" and typecast else value
            if typecast and isinstance(value, (int, float)) and not isinstance(value, bool):
                return text(value)
            raise bad
        if kind in NUMERIC:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if isinstance(value, float) and not math.isfinite(value):
                    raise bad  # 1e400 reads as infinity, which no JSON answer can carry
                return value
            if typecast and isinstance(value, str):
                try:
                    number = float(value.replace(",", "").strip() or "nan")
                except ValueError:
                    raise bad from None
                if number != number:
                    return None
                if not math.isfinite(number):
                    raise bad
                return int(number) if number.is_integer() and "." not in value else number
            raise bad
        if kind == "checkbox":
            if isinstance(value, bool):
                return value
            if typecast and isinstance(value, str) and value.strip().lower() in _TRUE_TEXT | _FALSE_TEXT:
                return value.strip().lower() in _TRUE_TEXT
            if typecast and isinstance(value, (int, float)):
                return bool(value)
            raise bad
        if kind in ("date", "dateTime"):
            return self._date(kind, value, typecast, bad)
        if kind == "singleSelect":
            if typecast and isinstance(value, (int, float)) and not isinstance(value, bool):
                value = text(value)
            if not isinstance(value, str):
                raise bad
            return self._choice(field, value, typecast)
        if kind == "multipleSelects":
            if typecast and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad
            return list(dict.fromkeys(self._choice(field, v, typecast) for v in value))
        if kind == "multipleAttachments":
            return self._attachments(field, value, bad)
        return self._links(field, value, typecast, bad)

    @staticmethod
    def _date(kind: str, value: Any, typecast: bool, bad: HTTPError) -> str:
        if not isinstance(value, str):
            raise bad
        parsed = parse_datetime(value)
        if parsed is None and typecast:
            for fmt in ("%m/%d/%Y", "%m/%d/%Y %H:%M", "%d %B %Y", "%B %d, %Y"):
                try:
                    parsed = _dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=_dt.timezone.utc)
                    break
                except ValueError:
                    continue
        if parsed is None:
            raise bad
        parsed = parsed.astimezone(_dt.timezone.utc)
        if kind == "date":
            return parsed.strftime("%Y-%m-%d")
        return iso_milliseconds(parsed)

    def _choice(self, field: dict[str, Any], value: str, typecast: bool) -> str:
        names = [c["name"] for c in field["options"]["choices"]]
        if value not in names:
            if not typecast:
                # Airtable's own wording, doubled quotes included.
                raise error(422, "INVALID_MULTIPLE_CHOICE_OPTIONS", f'Insufficient permissions to create new select option ""{value}""')
            field["options"]["choices"].append({"id": self.new_id("sel"), "name": value, "color": "blueLight2"})
        return value

    def _attachments(self, field: dict[str, Any], value: Any, bad: HTTPError) -> list[dict[str, Any]]:
        # An attachment is written as {"url", "filename"?}, or {"id"} to keep one
        # the cell already holds; Airtable gives each an id, a filename (from
        # the URL when none is given), a size and a MIME type.
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad
        out = []
        for item in value:
            if item.get("id") and not item.get("url"):
                kept = self._kept_attachment(item["id"])
                if kept is None:
                    raise error(422, "INVALID_ATTACHMENT_OBJECT", f'Field "{field["name"]}": attachment {item["id"]} does not exist')
                out.append(kept)
                continue
            url = item.get("url")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
                raise error(422, "INVALID_ATTACHMENT_OBJECT", f'Field "{field["name"]}": an attachment needs a "url"')
            filename = item.get("filename") or posixpath.basename(urlsplit(url).path) or "file"
            attachment = {
                "id": self.new_id("att"),
                "url": url,
                "filename": filename,
                "size": 0,
                "type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
            }
            self.attachments[attachment["id"]] = attachment
            out.append(attachment)
        return out

    def _kept_attachment(self, attachment_id: str) -> dict[str, Any] | None:
        found = self.attachments.get(attachment_id)
        return dict(found) if found else None

    def _links(self, field: dict[str, Any], value: Any, typecast: bool, bad: HTTPError) -> list[str]:
        # Linked records are written as a list of record ids of the linked
        # table. With typecast, text that is not an id names a record by its
        # primary field, and a record is created when none has that name.
        if typecast and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad
        table = self.table_by_id(field["options"]["linkedTableId"])
        primary = table["fields"][0]["name"]
        out = []
        for item in value:
            if item in table["records"]:
                out.append(item)
                continue
            if item.startswith("rec") and len(item) == 17:
                raise error(422, "ROW_DOES_NOT_EXIST", f"Record ID {item} does not exist")
            if not typecast:
                raise bad
            match = next((r for r in table["records"].values() if r["fields"].get(primary) == item), None)
            out.append((match or self.create_record(table, {primary: item}))["id"])
        return list(dict.fromkeys(out))


def formula_value(field: Mapping[str, Any] | None, value: Any, primary_of: Callable[[str, str], Any]) -> Any:
    """What a formula sees for a stored cell: dates as datetimes, lists joined with ", "."""
    if field is None or value is None:
        return value
    kind = field["type"]
    if kind in ("date", "dateTime"):
        return parse_datetime(value)
    if kind == "checkbox":
        return True if value else None
    if kind == "multipleSelects":
        return ", ".join(value) or None
    if kind == "multipleAttachments":
        return ", ".join(f"{a.get('filename')} ({a.get('url')})" for a in value) or None
    if kind == "multipleRecordLinks":
        return ", ".join(text(primary_of(field["options"]["linkedTableId"], rid)) for rid in value) or None
    return value
