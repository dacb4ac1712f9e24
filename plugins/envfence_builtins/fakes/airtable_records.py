"""The records endpoints of the fake Airtable: list (views, formulas, sorting, paging), read, create, update and upsert, delete.

Answered as Airtable does, with its error types and limits
(:data:`MAX_RECORDS_PER_REQUEST` a write, :data:`MAX_PAGE_SIZE` a page); a
batch that fails changes nothing. :class:`~envfence_builtins.fakes.airtable_emulator.FakeAirtable`
routes each request on a table's records here.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Callable, Mapping

from envfence.testing import HTTPError, Request, Response

from envfence_builtins.fakes import airtable_formulas as formulas
from envfence_builtins.fakes.airtable_fields import Cells, error, formula_value, is_empty

MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
NOT_FOUND = {"error": "NOT_FOUND"}  #: the body of a 404 for a path the API does not have
_BAD_REQUEST = "Invalid request: parameter validation failed. Check your request data."


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Records:
    """The records of every table of the fake, as the API reads and writes them.

    :param new_id: makes an Airtable-shaped id from a prefix (``rec``).
    :param table_by_id: finds a table of any base by its id (linked records).
    """

    def __init__(self, new_id: Callable[[str], str], table_by_id: Callable[[str], dict[str, Any]]) -> None:
        self.new_id = new_id
        self.table_by_id = table_by_id
        self.cells = Cells(new_id, table_by_id, self.create)

    def answer(self, method: str, request: Request, table: dict[str, Any], rest: str | None) -> Response:
        """Answer a request on a table's records: list, read, create, update (upserts too), delete."""
        body = request.body if isinstance(request.body, dict) else {}
        if method == "GET" and rest is None:
            return Response(200, self._list(table, _query_options(request.query), by_id=_flag(request.query, "returnFieldsByFieldId")))
        if method == "POST" and rest == "listRecords":
            return Response(200, self._list(table, body, by_id=bool(body.get("returnFieldsByFieldId"))))
        by_id = bool(body.get("returnFieldsByFieldId")) or _flag(request.query, "returnFieldsByFieldId")
        if rest is not None:
            record = table["records"].get(rest)
            if record is None:
                raise error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {rest}")
            if method == "GET":
                return Response(200, self.shown(record, table, by_id))
            if method in ("PATCH", "PUT"):
                fields = self.clean(table, body.get("fields"), bool(body.get("typecast")))
                self._write(record, fields, replace=method == "PUT")
                return Response(200, self.shown(record, table, by_id))
            if method == "DELETE":
                del table["records"][rest]
                return Response(200, {"id": rest, "deleted": True})
            raise HTTPError(404, NOT_FOUND)
        if method == "POST":
            typecast = bool(body.get("typecast"))
            if "records" in body:
                rows = [self.clean(table, r.get("fields"), typecast) for r in self._batch(body["records"])]
                created = [self.create(table, fields) for fields in rows]
                return Response(200, {"records": [self.shown(r, table, by_id) for r in created]})
            return Response(200, self.shown(self.create(table, self.clean(table, body.get("fields"), typecast)), table, by_id))
        if method in ("PATCH", "PUT"):
            return self._batch_update(table, body, method == "PUT", by_id)
        if method == "DELETE":
            ids = request.query.get("records[]", [])
            rows = self._batch([{"id": i} for i in ids])
            missing = [r["id"] for r in rows if r["id"] not in table["records"]]
            if missing:
                raise error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {missing[0]}")
            for r in rows:
                del table["records"][r["id"]]
            return Response(200, {"records": [{"id": r["id"], "deleted": True} for r in rows]})
        raise HTTPError(404, NOT_FOUND)

    def _batch(self, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise error(422, "INVALID_REQUEST_UNKNOWN", _BAD_REQUEST)
        if len(rows) > MAX_RECORDS_PER_REQUEST:
            raise error(422, "INVALID_RECORDS", f"You can only send up to {MAX_RECORDS_PER_REQUEST} records per request")
        return rows

    def _batch_update(self, table: dict[str, Any], body: Mapping[str, Any], replace: bool, by_id: bool) -> Response:
        rows = self._batch(body.get("records"))
        typecast = bool(body.get("typecast"))
        upsert = body.get("performUpsert")
        merge_on = self._merge_fields(table, upsert) if upsert is not None else None
        # Every row is checked and matched before anything is written: a
        # request that fails changes nothing.
        plan: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
        for row in rows:
            fields = self.clean(table, row.get("fields"), typecast)
            if row.get("id") is not None or merge_on is None:
                record = table["records"].get(row["id"]) if isinstance(row.get("id"), str) else None
                if record is None:
                    raise error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {row.get('id')}")
                plan.append((record, fields))
                continue
            if any(m not in fields for m in merge_on):
                raise error(422, "INVALID_VALUE_FOR_COLUMN", f"An upserted record without an id needs every field of fieldsToMergeOn: {', '.join(merge_on)}")
            found = [r for r in table["records"].values() if all(r["fields"].get(m) == fields[m] for m in merge_on)]
            if len(found) > 1:
                raise error(
                    422,
                    "INVALID_VALUE_FOR_COLUMN",
                    f"Cannot upsert: {len(found)} records match fieldsToMergeOn ({', '.join(merge_on)}); the request must match at most one",
                )
            plan.append((found[0] if found else None, fields))
        created, updated, result = [], [], []
        for record, fields in plan:
            if record is None:
                record = self.create(table, fields)
                created.append(record["id"])
            else:
                self._write(record, fields, replace)
                updated.append(record["id"])
            result.append(self.shown(record, table, by_id))
        answer: dict[str, Any] = {"records": result}
        if merge_on is not None:
            answer.update(createdRecords=created, updatedRecords=updated)
        return Response(200, answer)

    @staticmethod
    def _merge_fields(table: Mapping[str, Any], upsert: Any) -> list[str]:
        merge_on = (upsert or {}).get("fieldsToMergeOn") if isinstance(upsert, dict) else None
        if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3:
            raise error(422, "INVALID_REQUEST_UNKNOWN", "performUpsert.fieldsToMergeOn must name one to three fields")
        by_key = {f["name"]: f["name"] for f in table["fields"]} | {f["id"]: f["name"] for f in table["fields"]}
        unknown = [m for m in merge_on if m not in by_key]
        if unknown:
            raise error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{unknown[0]}"')
        return [by_key[m] for m in merge_on]

    def create(self, table: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        """Add a record of ``fields`` (already clean) to ``table``."""
        record = {"id": self.new_id("rec"), "createdTime": _now(), "fields": fields}
        table["records"][record["id"]] = record
        return record

    @staticmethod
    def _write(record: dict[str, Any], fields: Mapping[str, Any], replace: bool) -> None:
        if replace:
            record["fields"] = dict(fields)
        else:
            record["fields"].update(fields)

    def clean(self, table: Mapping[str, Any], fields: Any, typecast: bool) -> dict[str, Any]:
        """Check written fields against the schema, keyed by field name, as Airtable does."""
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise error(422, "INVALID_REQUEST_UNKNOWN", _BAD_REQUEST)
        by_key = {f["name"]: f for f in table["fields"]} | {f["id"]: f for f in table["fields"]}
        cleaned: dict[str, Any] = {}
        for key, value in fields.items():
            field = by_key.get(key)
            if field is None:
                raise error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{key}"')
            cleaned[field["name"]] = self.cells.clean(field, value, typecast)
        return cleaned

    def shown(self, record: Mapping[str, Any], table: Mapping[str, Any], by_id: bool) -> dict[str, Any]:
        """The record as Airtable returns it, its fields by name (or by id), empty cells left out."""
        ids = {f["name"]: f["id"] for f in table["fields"]}
        fields = {(ids.get(k, k) if by_id else k): v for k, v in record["fields"].items() if not is_empty(v)}
        return {"id": record["id"], "createdTime": record["createdTime"], "fields": fields}

    def _formula_values(self, table: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        """The record's cells as formulas see them (see :func:`.airtable_fields.formula_value`)."""
        schema = {f["name"]: f for f in table["fields"]}
        return {name: formula_value(schema.get(name), value, self._primary_value) for name, value in record["fields"].items()}

    def _primary_value(self, table_id: str, record_id: str) -> Any:
        table = self.table_by_id(table_id)
        record = table["records"].get(record_id)
        return record["fields"].get(table["fields"][0]["name"]) if record else record_id

    def _filter(self, table: Mapping[str, Any], rows: list[dict[str, Any]], formula: str) -> list[dict[str, Any]]:
        tree = formulas.parse(formula, {f["name"] for f in table["fields"]})
        return [r for r in rows if formulas.matches(tree, self._formula_values(table, r), r["id"])]

    def _sorted(self, table: Mapping[str, Any], rows: list[dict[str, Any]], rules: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        names = {f["name"] for f in table["fields"]}
        for rule in reversed(rules):
            name = rule.get("field")
            if name not in names:
                raise error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')
            if rule.get("direction", "asc") not in ("asc", "desc"):
                raise error(422, "INVALID_SORT_DIRECTION", f'Invalid sort direction: "{rule.get("direction")}"')
            rows.sort(key=lambda r: _sort_key(self._formula_values(table, r).get(name)), reverse=rule.get("direction") == "desc")
        return rows

    def _list(self, table: Mapping[str, Any], options: Mapping[str, Any], by_id: bool) -> dict[str, Any]:
        rows = list(table["records"].values())
        view = None
        if options.get("view"):
            view = next((v for v in table["views"] if options["view"] in (v["id"], v["name"])), None)
            if view is None:
                raise error(422, "VIEW_NAME_NOT_FOUND", f'Could not find view "{options["view"]}" in table "{table["name"]}"')
            if view["formula"]:
                rows = self._filter(table, rows, view["formula"])
        if options.get("filterByFormula"):
            rows = self._filter(table, rows, str(options["filterByFormula"]))
        rows = self._sorted(table, rows, list(options.get("sort") or (view["sort"] if view else [])))
        if options.get("maxRecords"):
            rows = rows[: _whole(options, "maxRecords")]
        size = min(_whole(options, "pageSize") if options.get("pageSize") else MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        start = 0
        if options.get("offset"):
            match = re.fullmatch(r"itr(\d+)/rec\w+", str(options["offset"]))
            if match is None:
                raise error(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "The offset is not valid; start again without it")
            start = int(match.group(1))
        wanted = options.get("fields") or []
        known = {f["name"] for f in table["fields"]} | {f["id"] for f in table["fields"]}
        for name in wanted:
            if name not in known:
                raise error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')
        shown = []
        for record in rows[start : start + size]:
            item = self.shown(record, table, by_id)
            if wanted:
                item["fields"] = {k: v for k, v in item["fields"].items() if k in wanted}
            shown.append(item)
        result: dict[str, Any] = {"records": shown}
        if start + size < len(rows):
            result["offset"] = f"itr{start + size}/{rows[start + size]['id']}"
        return result


def _sort_key(value: Any) -> tuple:
    # Empty cells sort first in ascending order; numbers before text before dates.
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, float(value))
    if isinstance(value, _dt.datetime):
        return (3, value.timestamp())
    return (2, str(value))


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() in ("1", "true")


def _query_options(query: Mapping[str, list[str]]) -> dict[str, Any]:
    """List options from a GET query string, in the listRecords body's shape."""
    options: dict[str, Any] = {k: v[0] for k, v in query.items() if not k.startswith(("sort[", "fields"))}
    options["fields"] = query.get("fields[]") or query.get("fields") or []
    sort: dict[int, dict[str, str]] = {}
    for key, values in query.items():
        match = re.fullmatch(r"sort\[(\d+)\]\[(field|direction)\]", key)
        if match:
            sort.setdefault(int(match.group(1)), {})[match.group(2)] = values[0]
    options["sort"] = [sort[i] for i in sorted(sort)]
    return options


def _whole(options: Mapping[str, Any], name: str) -> int:
    """A paging option as a whole number of at least 1, or Airtable's 422 for the request."""
    try:
        value = int(str(options[name]).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise error(422, "INVALID_REQUEST_UNKNOWN", f"Invalid request: {name} must be a whole number of at least 1")
    return value
