"""A fake Airtable Web API on 127.0.0.1, for tests and the demo.

It answers the calls envfence and its automations make, in Airtable's shapes,
so pyairtable talks to it unchanged through ``Api(token, endpoint_url=fake.url)``:

- ``GET /v0/meta/whoami``, ``GET /v0/meta/bases``, ``GET /v0/meta/bases/{base}/tables``
- ``GET /v0/{base}/{table}`` (and ``POST .../listRecords``) with ``pageSize``,
  ``offset``, ``maxRecords``, ``fields[]``, ``sort[n]`` and simple
  ``filterByFormula`` equalities; ``GET /v0/{base}/{table}/{record}``
- ``POST`` (create one or up to 10), ``PATCH``/``PUT`` (update one or up to
  10, ``performUpsert`` too), ``DELETE`` records

and fails as Airtable does: 401 for a missing or unknown token, 403 for a base
that does not exist or that the token cannot see, 404 for an unknown record
or path, 422 for an unknown field or a bad request, 429 past
``rate_limit`` requests a second on one base.

::

    with FakeAirtable() as fake:                    # seeded with the demo's tokens and bases
        api = pyairtable.Api(DEMO_DEV_TOKEN, endpoint_url=fake.url)
        api.table(DEMO_DEV_BASE, "Jobs").all()

    with FakeAirtable(seed=False) as fake:          # or bring your own data
        fake.add_token("pat...", bases=["appXXXXXXXXXXXXXX"])
        fake.add_base("appXXXXXXXXXXXXXX", "Ops")
        fake.add_table("appXXXXXXXXXXXXXX", "Status", ["Automation", "State"])
"""

from __future__ import annotations

import datetime as _dt
import random
import re
import string
from typing import Any, Iterable, Mapping

from envfence.testing import FakeService, HTTPError, Request, Response

#: The demo project's tokens and bases (``contrib/demo-project/.env``): fake values.
DEMO_DEV_TOKEN = "patDemoDevToken01.0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
DEMO_PROD_TOKEN = "patDemoProdTokn01.a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
DEMO_DEV_BASE = "appDemoDevBase001"
DEMO_PROD_BASE = "appDemoLiveBase01"

#: The fields of the seeded ``Jobs`` table.
JOBS_FIELDS = (
    "Name",
    {"name": "Customer", "type": "singleLineText"},
    {"name": "Status", "type": "singleSelect", "choices": ["scheduled", "in progress", "done"]},
    {"name": "Amount", "type": "number"},
    {"name": "Paid", "type": "checkbox"},
)

MAX_RECORDS_PER_REQUEST = 10
MAX_PAGE_SIZE = 100

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

# Options that pyairtable's schema models require for these field types.
_DEFAULT_OPTIONS: dict[str, Any] = {
    "number": {"precision": 0},
    "currency": {"precision": 2, "symbol": "$"},
    "percent": {"precision": 0},
    "checkbox": {"color": "greenBright", "icon": "check"},
    "date": {"dateFormat": {"name": "iso", "format": "YYYY-MM-DD"}},
}
_NUMERIC = {"number", "currency", "percent"}


def _error(status: int, kind: str, message: str) -> HTTPError:
    return HTTPError(status, {"error": {"type": kind, "message": message}})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeAirtable(FakeService):
    """A fake Airtable holding tokens, bases, tables and records in memory.

    :param seed: start with the demo project's tokens, bases and ``Jobs``
        tables (:data:`DEMO_DEV_TOKEN` sees :data:`DEMO_DEV_BASE` only,
        :data:`DEMO_PROD_TOKEN` sees :data:`DEMO_PROD_BASE` only).
    :param port: the port to bind on 127.0.0.1 (0: a free one).
    :param rate_limit: requests a second allowed on one base before 429
        (Airtable's limit is 5).
    """

    label = "fake Airtable"

    def __init__(self, seed: bool = True, port: int = 0, rate_limit: int = 5) -> None:
        super().__init__(port)
        self.rate_limit = rate_limit
        self.tokens: dict[str, dict[str, Any]] = {}
        self.bases: dict[str, dict[str, Any]] = {}
        self._random = random.Random(20240201)
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
        """Create a table; each field is a name (single line text) or ``{"name", "type", "choices"}``.

        The first field is the primary field. Returns the table id.
        """
        self.add_base(base_id)
        with self.lock:
            tid = table_id or self.new_id("tbl")
            schema = []
            for spec in fields:
                spec = {"name": spec} if isinstance(spec, str) else dict(spec)
                kind = spec.get("type", "singleLineText")
                field: dict[str, Any] = {"id": spec.get("id") or self.new_id("fld"), "name": spec["name"], "type": kind}
                if kind in ("singleSelect", "multipleSelects"):
                    field["options"] = {"choices": [{"id": self.new_id("sel"), "name": c, "color": "blueLight2"} for c in spec.get("choices", [])]}
                elif kind in _DEFAULT_OPTIONS:
                    field["options"] = spec.get("options", _DEFAULT_OPTIONS[kind])
                schema.append(field)
            self.bases[base_id]["tables"][tid] = {
                "id": tid,
                "name": name,
                "fields": schema,
                "views": [{"id": self.new_id("viw"), "name": "Grid view", "type": "grid"}],
                "records": {},
            }
            return tid

    def add_records(self, base_id: str, table: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert records (field name -> value) without any check; returns their ids."""
        with self.lock:
            found = self._table(base_id, table)
            ids = []
            for fields in rows:
                record = {"id": self.new_id("rec"), "createdTime": _now(), "fields": dict(fields)}
                found["records"][record["id"]] = record
                ids.append(record["id"])
            return ids

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """The table's records as Airtable returns them (copies), oldest first."""
        with self.lock:
            return [self._shown(r, self._table(base_id, table), False) for r in self._table(base_id, table)["records"].values()]

    def seed_demo(self) -> None:
        """Add the demo project's tokens, bases and ``Jobs`` tables."""
        self.add_base(DEMO_DEV_BASE, "Acme (sandbox)")
        self.add_base(DEMO_PROD_BASE, "Acme")
        for base in (DEMO_DEV_BASE, DEMO_PROD_BASE):
            self.add_table(base, "Jobs", JOBS_FIELDS)
        self.add_records(DEMO_DEV_BASE, "Jobs", [
            {"Name": "JOB-1001", "Customer": "Test Customer", "Status": "scheduled", "Amount": 120},
            {"Name": "JOB-1002", "Customer": "Test Customer", "Status": "done", "Amount": 80, "Paid": True},
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
        if self.over_rate(base_id, self.rate_limit):
            raise HTTPError(429, _RATE_LIMITED)

    def _table(self, base_id: str, name: str) -> dict[str, Any]:
        if base_id not in self.bases:
            raise KeyError(f"no base {base_id!r} in the fake")
        return self._find_table(self.bases[base_id], name)

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
            "views": [dict(v) for v in table["views"]],
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
                raise _error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {rest}")
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
                rows = self._batch(body["records"])
                created = [self._create(table, self._clean(table, r.get("fields"), typecast)) for r in rows]
                return Response(200, {"records": [self._shown(r, table, by_id) for r in created]})
            return Response(200, self._shown(self._create(table, self._clean(table, body.get("fields"), typecast)), table, by_id))
        if method in ("PATCH", "PUT"):
            return self._batch_update(table, body, method == "PUT", by_id)
        if method == "DELETE":
            ids = request.query.get("records[]", [])
            rows = self._batch([{"id": i} for i in ids])
            missing = [r["id"] for r in rows if r["id"] not in table["records"]]
            if missing:
                raise _error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {missing[0]}")
            for r in rows:
                del table["records"][r["id"]]
            return Response(200, {"records": [{"id": r["id"], "deleted": True} for r in rows]})
        raise HTTPError(404, _NOT_FOUND)

    def _batch(self, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _error(422, "INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed. Check your request data.")
        if len(rows) > MAX_RECORDS_PER_REQUEST:
            raise _error(422, "INVALID_RECORDS", f"You can only send up to {MAX_RECORDS_PER_REQUEST} records per request")
        return rows

    def _batch_update(self, table: dict[str, Any], body: Mapping[str, Any], replace: bool, by_id: bool) -> Response:
        rows = self._batch(body.get("records"))
        typecast = bool(body.get("typecast"))
        upsert = body.get("performUpsert")
        if upsert is not None:
            merge_on = list((upsert or {}).get("fieldsToMergeOn") or [])
            known = {f["name"] for f in table["fields"]} | {f["id"] for f in table["fields"]}
            if not merge_on or any(m not in known for m in merge_on):
                raise _error(422, "INVALID_VALUE_FOR_COLUMN", "fieldsToMergeOn must name existing fields")
            created, updated, result = [], [], []
            for row in rows:
                fields = self._clean(table, row.get("fields"), typecast)
                match = next(
                    (r for r in table["records"].values() if all(r["fields"].get(m) == fields.get(m) for m in merge_on)),
                    None,
                )
                if match is None:
                    match = self._create(table, fields)
                    created.append(match["id"])
                else:
                    self._write(match, fields, replace)
                    updated.append(match["id"])
                result.append(self._shown(match, table, by_id))
            return Response(200, {"records": result, "createdRecords": created, "updatedRecords": updated})
        missing = [r.get("id") for r in rows if r.get("id") not in table["records"]]
        if missing:
            raise _error(404, "MODEL_ID_NOT_FOUND", f"Could not find record {missing[0]}")
        cleaned = [(table["records"][r["id"]], self._clean(table, r.get("fields"), typecast)) for r in rows]
        for record, fields in cleaned:
            self._write(record, fields, replace)
        return Response(200, {"records": [self._shown(r, table, by_id) for r, _ in cleaned]})

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
            raise _error(422, "INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed. Check your request data.")
        by_key = {f["name"]: f for f in table["fields"]} | {f["id"]: f for f in table["fields"]}
        cleaned: dict[str, Any] = {}
        for key, value in fields.items():
            field = by_key.get(key)
            if field is None:
                raise _error(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{key}"')
            cleaned[field["name"]] = self._value(field, value, typecast)
        return cleaned

    def _value(self, field: dict[str, Any], value: Any, typecast: bool) -> Any:
        kind = field["type"]
        bad = _error(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{field["name"]}" cannot accept the provided value')
        if value is None:
            return None
        if kind in _NUMERIC:
            if isinstance(value, bool):
                raise bad
            if isinstance(value, (int, float)):
                return value
            if typecast:
                try:
                    return float(value) if "." in str(value) else int(value)
                except ValueError:
                    raise bad from None
            raise bad
        if kind == "checkbox":
            if isinstance(value, bool):
                return value
            raise bad
        if kind == "singleSelect":
            if not isinstance(value, str):
                raise bad
            names = [c["name"] for c in field["options"]["choices"]]
            if value not in names:
                if not typecast:
                    raise _error(422, "INVALID_MULTIPLE_CHOICE_OPTIONS", f'Insufficient permissions to create new select option ""{value}""')
                field["options"]["choices"].append({"id": self.new_id("sel"), "name": value, "color": "blueLight2"})
            return value
        if not isinstance(value, (str, int, float, list, dict)):
            raise bad
        return value

    def _shown(self, record: Mapping[str, Any], table: Mapping[str, Any], by_id: bool) -> dict[str, Any]:
        ids = {f["name"]: f["id"] for f in table["fields"]}
        # Airtable leaves empty fields (None, "", [], False) out of its answers.
        fields = {(ids.get(k, k) if by_id else k): v for k, v in record["fields"].items() if v not in (None, "", [], False)}
        return {"id": record["id"], "createdTime": record["createdTime"], "fields": fields}

    def _list(self, table: Mapping[str, Any], options: Mapping[str, Any], by_id: bool) -> dict[str, Any]:
        rows = list(table["records"].values())
        formula = options.get("filterByFormula")
        if formula:
            test = _formula(formula, {f["name"] for f in table["fields"]})
            rows = [r for r in rows if test(r["fields"])]
        for rule in reversed(options.get("sort") or []):
            name = rule.get("field")
            rows.sort(key=lambda r: (r["fields"].get(name) is None, r["fields"].get(name)), reverse=rule.get("direction") == "desc")
        if options.get("maxRecords"):
            rows = rows[: int(options["maxRecords"])]
        size = min(int(options.get("pageSize") or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        start = 0
        if options.get("offset"):
            match = re.fullmatch(r"itr(\d+)/rec\w+", str(options["offset"]))
            if match is None:
                raise _error(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "The offset is not valid; start again without it")
            start = int(match.group(1))
        page = rows[start : start + size]
        wanted = options.get("fields")
        shown = []
        for record in page:
            item = self._shown(record, table, by_id)
            if wanted:
                item["fields"] = {k: v for k, v in item["fields"].items() if k in wanted}
            shown.append(item)
        result: dict[str, Any] = {"records": shown}
        if start + size < len(rows):
            result["offset"] = f"itr{start + size}/{rows[start + size]['id']}"
        return result


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


_EQUALITY = re.compile(r"""\{([^}]+)\}\s*=\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|TRUE\(\)|FALSE\(\))""")


def _formula(text: str, known: set[str]):
    """A predicate for the formulas pyairtable's ``match()`` writes: equalities, joined by AND()."""
    body = text.strip()
    inner = re.fullmatch(r"AND\((.*)\)", body, re.S)
    terms = _split_terms(inner.group(1)) if inner else [body]
    tests = []
    for term in terms:
        match = _EQUALITY.fullmatch(term.strip())
        if match is None:
            raise _error(
                422,
                "INVALID_FILTER_BY_FORMULA",
                "The formula for filtering records is invalid: the fake Airtable understands {Field}=value and AND() of those",
            )
        name, raw = match.groups()
        if name not in known:
            raise _error(422, "INVALID_FILTER_BY_FORMULA", f"The formula for filtering records is invalid: Unknown field names: {name.lower()}")
        if raw[0] in "'\"":
            value: Any = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif raw in ("TRUE()", "FALSE()"):
            value = raw == "TRUE()"
        else:
            value = float(raw) if "." in raw else int(raw)
        tests.append((name, value))

    def predicate(fields: Mapping[str, Any]) -> bool:
        return all(fields.get(name, False if isinstance(value, bool) else None) == value for name, value in tests)

    return predicate


def _split_terms(text: str) -> list[str]:
    terms, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
            continue
        current.append(ch)
    terms.append("".join(current))
    return terms
