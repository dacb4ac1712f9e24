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

import random
import string
from typing import Any, Iterable, Mapping

from envfence.testing import FakeService, HTTPError, Request, Response

from envfence_builtins.fakes import airtable_formulas as formulas
from envfence_builtins.fakes.airtable_fields import schema_field
from envfence_builtins.fakes.airtable_records import NOT_FOUND, Records

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
_RATE_LIMITED = {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}


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
        self.rows = Records(self.new_id, self._table_by_id)
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
            return [self.rows.create(found, self.rows.clean(found, dict(fields), typecast))["id"] for fields in rows]

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """The table's records as Airtable returns them (copies), oldest first."""
        with self.lock:
            found = self._table(base_id, table)
            return [self.rows.shown(r, found, False) for r in found["records"].values()]

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
            raise HTTPError(404, NOT_FOUND)
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
            return self.rows.answer(method, request, table, rest)
        raise HTTPError(404, NOT_FOUND)

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
