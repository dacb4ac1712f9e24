"""A fake Airtable Web API on 127.0.0.1, for tests and the demo.

It answers the calls envfence and its automations make, in Airtable's shapes,
so pyairtable talks to it unchanged through ``Api(token, endpoint_url=fake.url)``:

- ``GET /v0/meta/whoami``, ``GET /v0/meta/bases``, ``GET /v0/meta/bases/{base}/tables``
- ``GET /v0/{base}/{table}`` (and ``POST .../listRecords``) with ``pageSize``,
  ``offset``, ``maxRecords``, ``fields[]``, ``sort[n]``, ``view`` and
  ``filterByFormula`` (see :mod:`.airtable_formulas`); ``GET /v0/{base}/{table}/{record}``
- ``POST`` (create one or up to 10), ``PATCH``/``PUT`` (update one or up to
  10, ``performUpsert`` too), ``DELETE`` records

Followed, from Airtable's Web API reference (https://airtable.com/developers/web/api):

- "Rate limits": 5 requests a second per base; past that a 429, and "you will
  need to wait 30 seconds before subsequent requests will succeed". The 30 s
  are counted on :attr:`FakeService.clock`, which tests freeze and advance.
- "Update multiple records", Upserts: a record that carries an ``id`` is
  updated by id and ``fieldsToMergeOn`` is ignored for it; an unknown id fails
  the request; without an id, zero matches create, one match updates, several
  matches fail the request. ``fieldsToMergeOn`` names one to three fields.
- "List records": ``view`` filters and sorts as the view does and an explicit
  ``sort`` overrides the view's; an unknown view, field or sort field is a 422.
- "Errors": 401 ``AUTHENTICATION_REQUIRED``, 403
  ``INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`` for a base that does not exist or
  that the token cannot see, 404 for an unknown record, 422 for bad input.
- Field types and typecast: :mod:`.airtable_fields`. Empty cells (no value,
  "", [], an unchecked checkbox) are left out of answers; 0 is a value.

::

    with FakeAirtable() as fake:                    # seeded with the demo's tokens and bases
        api = pyairtable.Api(DEMO_DEV_TOKEN, endpoint_url=fake.url)
        api.table(DEMO_DEV_BASE, "Jobs").all(formula="AND({Amount} > 100, NOT({Paid}))")

    with FakeAirtable(seed=False) as fake:          # or bring your own data
        fake.add_token("pat...", bases=["appXXXXXXXXXXXXXX"])
        fake.add_base("appXXXXXXXXXXXXXX", "Ops")
        fake.add_table("appXXXXXXXXXXXXXX", "Status", ["Automation", {"name": "Runs", "type": "number"}])
        fake.add_view("appXXXXXXXXXXXXXX", "Status", "Busy", formula="{Runs} > 10", sort=[{"field": "Runs", "direction": "desc"}])
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import string
from typing import Any, Iterable, Mapping

from envfence.testing import FakeService, HTTPError, Request, Response

from envfence_builtins.fakes import airtable_formulas as formulas
from envfence_builtins.fakes.airtable_fields import Cells, error, formula_value, is_empty, schema_field

#: The demo project's tokens and bases (``contrib/demo-project/.env``): fake values.
DEMO_DEV_TOKEN = "patDemoDevToken01.0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
DEMO_PROD_TOKEN = "patDemoProdTokn01.a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
DEMO_DEV_BASE = "appDemoDevBase001"
DEMO_PROD_BASE = "appDemoLiveBase01"

#: The seeded ``Customers`` table: the target of ``Jobs.Client``.
CUSTOMERS_FIELDS = ("Name", {"name": "Email", "type": "email"})

#: The fields of the seeded ``Jobs`` table: one of each type the fake models.
JOBS_FIELDS = (
    "Name",
    {"name": "Customer", "type": "singleLineText"},
    {"name": "Status", "type": "singleSelect", "choices": ["scheduled", "in progress", "done"]},
    {"name": "Amount", "type": "number"},
    {"name": "Paid", "type": "checkbox"},
    {"name": "Notes", "type": "multilineText"},
    {"name": "Due", "type": "date"},
    {"name": "Tags", "type": "multipleSelects", "choices": ["urgent", "warranty", "repeat"]},
    {"name": "Photos", "type": "multipleAttachments"},
    {"name": "Client", "type": "multipleRecordLinks", "table": "Customers"},
)

MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100
#: Airtable's lock-out after a 429, in seconds ("Rate limits").
RATE_LIMIT_PENALTY = 30.0

_ALNUM = string.ascii_letters + string.digits

# Airtable's error bodies, by kind.
_UNAUTHORIZED = {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}}
_FORBIDDEN = {
    "error": {
        "type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "message": "Invalid permissions, or the requested model was not found. Check that both your user and "
        "your token have the required permissions, and that the model names and/or ids are correct.",
    }
}
_NOT_FOUND = {"error": "NOT_FOUND"}
_RATE_LIMITED = {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}
_BAD_REQUEST = "Invalid request: parameter validation failed. Check your request data."


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeAirtable(FakeService):
    """A fake Airtable holding tokens, bases, tables, views and records in memory.

    :param seed: start with the demo project's tokens, bases and ``Jobs`` and
        ``Customers`` tables (:data:`DEMO_DEV_TOKEN` sees
        :data:`DEMO_DEV_BASE` only, :data:`DEMO_PROD_TOKEN` sees
        :data:`DEMO_PROD_BASE` only).
    :param port: the port to bind on 127.0.0.1 (0: a free one).
    :param rate_limit: requests a second allowed on one base before 429
        (Airtable's limit is 5).
    :param penalty: seconds, on :attr:`clock`, that a base answers 429 after
        going over the limit (Airtable's is 30).
    """

    label = "fake Airtable"

    def __init__(self, seed: bool = True, port: int = 0, rate_limit: int = 5, penalty: float = RATE_LIMIT_PENALTY) -> None:
        super().__init__(port)
        self.rate_limit = rate_limit
        self.penalty = penalty
        self.tokens: dict[str, dict[str, Any]] = {}
        self.bases: dict[str, dict[str, Any]] = {}
        self._random = random.Random(20240201)
        self._locked_until: dict[str, float] = {}
        self.cells = Cells(self.new_id, self._table_by_id, self._create)
        if seed:
            self.seed_demo()

    # --- seeding -------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """An Airtable-shaped id: ``prefix`` and 14 letters or digits."""
        with self.lock:
            return prefix + "".join(self._random.choice(_ALNUM) for _ in range(14))

    def add_token(self, token: str, bases: Iterable[str] | None = None, scopes: Iterable[str] | None = None, user_id: str | None = None) -> None:
        """Accept ``token``; it sees ``bases`` (None: every base)."""
        with self.lock:
            self.tokens[token] = {
                "id": user_id or self.new_id("usr"),
                "scopes": list(scopes or ["data.records:read", "data.records:write", "schema.bases:read"]),
                "bases": None if bases is None else set(bases),
            }

    def add_base(self, base_id: str, name: str = "") -> None:
        """Create an empty base."""
        with self.lock:
            self.bases.setdefault(base_id, {"id": base_id, "name": name or base_id, "tables": {}})

    def add_table(self, base_id: str, name: str, fields: Iterable[str | Mapping[str, Any]] = ("Name",), table_id: str | None = None) -> str:
        """Create a table; each field is a name (single line text) or ``{"name", "type", ...}``.

        ``type`` is one of :data:`.airtable_fields.KNOWN`; a select takes
        ``choices`` (names), a linked record ``table`` (the linked table's
        name or id in the same base). The first field is the primary field.
        The table has one view, ``Grid view``. Returns the table id.
        """
        self.add_base(base_id)
        with self.lock:
            base = self.bases[base_id]
            tid = table_id or self.new_id("tbl")
            schema = [
                schema_field({"name": spec} if isinstance(spec, str) else spec, self.new_id, lambda t: self._find_table(base, t)["id"])
                for spec in fields
            ]
            base["tables"][tid] = {"id": tid, "name": name, "fields": schema, "views": [], "records": {}}
            self.add_view(base_id, tid, "Grid view")
            return tid

    def add_view(self, base_id: str, table: str, name: str, formula: str | None = None, sort: Iterable[Mapping[str, str]] = ()) -> str:
        """Add a view: a named filter (a formula) and sort (``[{"field", "direction"}]``); returns its id."""
        with self.lock:
            found = self._table(base_id, table)
            if formula:
                formulas.parse(formula, {f["name"] for f in found["fields"]})  # refuse a bad view now, not on use
            view = {"id": self.new_id("viw"), "name": name, "type": "grid", "formula": formula, "sort": [dict(s) for s in sort]}
            found["views"].append(view)
            return view["id"]

    def add_records(self, base_id: str, table: str, rows: Iterable[Mapping[str, Any]], typecast: bool = False) -> list[str]:
        """Insert records (field name -> value), checked as a create is; returns their ids."""
        with self.lock:
            found = self._table(base_id, table)
            return [self._create(found, self._clean(found, dict(fields), typecast))["id"] for fields in rows]

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """The table's records as Airtable returns them (copies), oldest first."""
        with self.lock:
            found = self._table(base_id, table)
            return [self._shown(r, found, False) for r in found["records"].values()]

    def seed_demo(self) -> None:
        """Add the demo project's tokens, bases, and ``Customers`` and ``Jobs`` tables."""
        self.add_base(DEMO_DEV_BASE, "Acme (sandbox)")
        self.add_base(DEMO_PROD_BASE, "Acme")
        for base in (DEMO_DEV_BASE, DEMO_PROD_BASE):
            self.add_table(base, "Customers", CUSTOMERS_FIELDS)
            self.add_table(base, "Jobs", JOBS_FIELDS)
        (customer,) = self.add_records(DEMO_DEV_BASE, "Customers", [{"Name": "Test Customer", "Email": "test@example.com"}])
        self.add_records(DEMO_DEV_BASE, "Jobs", [
            {"Name": "JOB-1001", "Customer": "Test Customer", "Status": "scheduled", "Amount": 120, "Due": "2024-03-01", "Client": [customer]},
            {"Name": "JOB-1002", "Customer": "Test Customer", "Status": "done", "Amount": 80, "Paid": True, "Tags": ["repeat"], "Client": [customer]},
        ])
        self.add_token(DEMO_DEV_TOKEN, bases=[DEMO_DEV_BASE], user_id="usrDemoDeveloper")
        self.add_token(DEMO_PROD_TOKEN, bases=[DEMO_PROD_BASE], user_id="usrDemoProdRobot")

    # --- answering -----------------------------------------------------------------

    def handle(self, request: Request, token: str | None) -> Response:
        with self.lock:
            return self._handle(request, token)

    def _handle(self, request: Request, token: str | None) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if not parts or parts[0] != "v0":
            raise HTTPError(404, _NOT_FOUND)
        parts = parts[1:]
        grant = self.tokens.get(token or "") if request.scheme.lower() == "bearer" else None
        if grant is None:
            raise HTTPError(401, _UNAUTHORIZED)
        method = request.method
        if parts == ["meta", "whoami"] and method == "GET":
            return Response(200, {"id": grant["id"], "scopes": grant["scopes"]})
        if parts == ["meta", "bases"] and method == "GET":
            visible = [b for b in self.bases.values() if self._visible(grant, b["id"])]
            return Response(200, {"bases": [{"id": b["id"], "name": b["name"], "permissionLevel": "create"} for b in visible]})
        if len(parts) == 4 and parts[:2] == ["meta", "bases"] and parts[3] == "tables" and method == "GET":
            base = self._base(grant, parts[2])
            return Response(200, {"tables": [self._schema(t) for t in base["tables"].values()]})
        if len(parts) in (2, 3) and not parts[0] == "meta":
            base = self._base(grant, parts[0])
            table = self._find_table(base, parts[1])
            rest = parts[2] if len(parts) == 3 else None
            return self._records(method, request, table, rest)
        raise HTTPError(404, _NOT_FOUND)

    def _visible(self, grant: Mapping[str, Any], base_id: str) -> bool:
        return base_id in self.bases and (grant["bases"] is None or base_id in grant["bases"])

    def _base(self, grant: Mapping[str, Any], base_id: str) -> dict[str, Any]:
        # Airtable does not tell "no such base" from "not yours": both are 403.
        if not self._visible(grant, base_id):
            raise HTTPError(403, _FORBIDDEN)
        self._throttle(base_id)
        return self.bases[base_id]

    def _throttle(self, base_id: str) -> None:
        # Past the limit, the base answers 429 until the penalty is over,
        # whatever the rate meanwhile ("Rate limits").
        now = self.clock()
        if now < self._locked_until.get(base_id, float("-inf")):
            raise HTTPError(429, _RATE_LIMITED)
        if self.over_rate(base_id, self.rate_limit):
            self._locked_until[base_id] = now + self.penalty
            self.forget_rate(base_id)  # after the penalty, counting starts afresh
            raise HTTPError(429, _RATE_LIMITED)

    def _table(self, base_id: str, name: str) -> dict[str, Any]:
        if base_id not in self.bases:
            raise KeyError(f"no base {base_id!r} in the fake")
        return self._find_table(self.bases[base_id], name)

    def _table_by_id(self, table_id: str) -> dict[str, Any]:
        for base in self.bases.values():
            if table_id in base["tables"]:
                return base["tables"][table_id]
        raise KeyError(f"no table {table_id!r} in the fake")

    @staticmethod
    def _find_table(base: Mapping[str, Any], id_or_name: str) -> dict[str, Any]:
        for table in base["tables"].values():
            if id_or_name in (table["id"], table["name"]):
                return table
        raise HTTPError(403, _FORBIDDEN)

    @staticmethod
    def _schema(table: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": table["id"],
            "name": table["name"],
            "primaryFieldId": table["fields"][0]["id"],
            "fields": [dict(f) for f in table["fields"]],
            "views": [{"id": v["id"], "name": v["name"], "type": v["type"]} for v in table["views"]],
        }

    # --- records -------------------------------------------------------------------

    def _records(self, method: str, request: Request, table: dict[str, Any], rest: str | None) -> Response:
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
                return Response(200, self._shown(record, table, by_id))
            if method in ("PATCH", "PUT"):
                fields = self._clean(table, body.get("fields"), bool(body.get("typecast")))
                self._write(record, fields, replace=method == "PUT")
                return Response(200, self._shown(record, table, by_id))
            if method == "DELETE":
                del table["records"][rest]
                return Response(200, {"id": rest, "deleted": True})
            raise HTTPError(404, _NOT_FOUND)
        if method == "POST":
            typecast = bool(body.get("typecast"))
            if "records" in body:
                rows = [self._clean(table, r.get("fields"), typecast) for r in self._batch(body["records"])]
                created = [self._create(table, fields) for fields in rows]
                return Response(200, {"records": [self._shown(r, table, by_id) for r in created]})
            return Response(200, self._shown(self._create(table, self._clean(table, body.get("fields"), typecast)), table, by_id))
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
        raise HTTPError(404, _NOT_FOUND)

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
            fields = self._clean(table, row.get("fields"), typecast)
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
                record = self._create(table, fields)
                created.append(record["id"])
            else:
                self._write(record, fields, replace)
                updated.append(record["id"])
            result.append(self._shown(record, table, by_id))
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

    def _create(self, table: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        record = {"id": self.new_id("rec"), "createdTime": _now(), "fields": fields}
        table["records"][record["id"]] = record
        return record

    @staticmethod
    def _write(record: dict[str, Any], fields: Mapping[str, Any], replace: bool) -> None:
        if replace:
            record["fields"] = dict(fields)
        else:
            record["fields"].update(fields)

    def _clean(self, table: Mapping[str, Any], fields: Any, typecast: bool) -> dict[str, Any]:
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

    def _shown(self, record: Mapping[str, Any], table: Mapping[str, Any], by_id: bool) -> dict[str, Any]:
        ids = {f["name"]: f["id"] for f in table["fields"]}
        fields = {(ids.get(k, k) if by_id else k): v for k, v in record["fields"].items() if not is_empty(v)}
        return {"id": record["id"], "createdTime": record["createdTime"], "fields": fields}

    def _formula_values(self, table: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        """The record's cells as formulas see them (see :func:`.airtable_fields.formula_value`)."""
        schema = {f["name"]: f for f in table["fields"]}
        return {name: formula_value(schema.get(name), value, self._primary_value) for name, value in record["fields"].items()}

    def _primary_value(self, table_id: str, record_id: str) -> Any:
        table = self._table_by_id(table_id)
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
            item = self._shown(record, table, by_id)
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
