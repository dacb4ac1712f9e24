"""A fake HousecallPro public API on 127.0.0.1, for tests and the demo.

Answers, with ``Authorization: Token <key>`` (or ``Bearer <key>``):

- ``GET /company``
- ``GET /customers`` (``page``, ``page_size``, ``q``), ``GET /customers/{id}``, ``POST /customers``
- ``GET /jobs`` (``page``, ``page_size``, ``customer_id``, ``work_status[]``,
  ``scheduled_start_min``, ``scheduled_start_max``), ``GET /jobs/{id}``, ``POST /jobs``

and sends signed webhooks with :meth:`FakeHousecallPro.deliver`.

Followed, from HousecallPro's public API reference (https://docs.housecallpro.com/,
and the OpenAPI description of it at
https://github.com/api-evangelist/housecall-pro, openapi/housecall-pro-public-api-openapi.yml):
the two authorization schemes (``Token`` and ``Bearer`` with the API key), the
list parameters above, page-numbered pagination (``page`` from 1,
``page_size``), the customer and job fields, amounts in cents, and the job
``work_status`` values.

envfence's assumptions, where nothing is published (docs/fakes.md lists them):
the list envelope (``page``, ``page_size``, ``total_pages``, ``total_items``
and the items under the resource's name), the error body
``{"error": {"message", "code"}}``, the largest ``page_size`` (200), the 429
and its ``Retry-After`` (HousecallPro publishes no rate limit: off unless
``rate_limit`` is set), and the webhook body ``{"event", "company_id", <resource>}``.
The webhook signature is the scheme :mod:`.webhook_signatures` verifies.

::

    with FakeHousecallPro() as fake:                # seeded with the demo's keys
        requests.get(f"{fake.url}/company", headers={"Authorization": f"Token {DEMO_DEV_KEY}"})
"""

from __future__ import annotations

import datetime as _dt
import math
import uuid
from typing import Any, Iterable, Mapping

from envfence.testing import FakeService, HTTPError, Request, Response

#: The demo project's keys (``contrib/demo-project/.env``): fake values.
DEMO_DEV_KEY = "hcp_dev_3f9a7c1e5b2d4f6a8c0e2b4d6f8a0c2e"
DEMO_PROD_KEY = "hcp_prod_7b1d9f3a5c7e9b1d3f5a7c9e1b3d5f7a"

_UNAUTHORIZED = {"error": {"message": "Unauthorized: the API key is missing, invalid or revoked", "code": 401}}
_NOT_FOUND = {"error": {"message": "Not Found", "code": 404}}
MAX_PAGE_SIZE = 200

#: A job's ``work_status`` values, as HousecallPro's API reference lists them.
WORK_STATUSES = ("unscheduled", "scheduled", "in progress", "complete rated", "complete unrated", "user canceled", "pro canceled")


def _unprocessable(message: str) -> HTTPError:
    return HTTPError(422, {"error": {"message": message, "code": 422}})


#: Fields HousecallPro sets itself; a request's values for them are ignored.
_READ_ONLY = frozenset({"id", "created_at", "updated_at", "invoice_number", "customer"})
#: Fields that hold text.
_TEXT_FIELDS = ("first_name", "last_name", "email", "mobile_number", "company", "description", "work_status")


def _moment(text: Any) -> _dt.datetime | None:
    """An ISO 8601 date-time as an aware datetime (UTC when it names no zone), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_dt.timezone.utc)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeHousecallPro(FakeService):
    """A fake HousecallPro holding API keys, one company, customers and jobs.

    :param seed: start with the demo project's keys, company, two customers
        and two jobs.
    :param port: the port to bind on 127.0.0.1 (0: a free one).
    :param rate_limit: requests a second before 429 (None: no limit).
    """

    label = "fake HousecallPro"

    def __init__(self, seed: bool = True, port: int = 0, rate_limit: int | None = None) -> None:
        super().__init__(port)
        self.rate_limit = rate_limit
        self.keys: set[str] = set()
        self.company: dict[str, Any] = {
            "id": "com_" + uuid.UUID(int=1).hex,
            "name": "Acme Home Services",
            "phone_number": "5555550100",
            "support_email": "support@acme.example",
            "time_zone": "America/Denver",
            "website": "https://acme.example",
        }
        self.customers: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._counter = 0
        if seed:
            self.seed_demo()

    # --- seeding -------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{uuid.UUID(int=self._counter * 7919).hex}"

    def add_key(self, key: str) -> None:
        """Accept ``key``."""
        with self.lock:
            self.keys.add(key)

    def add_customer(self, first_name: str, last_name: str = "", **fields: Any) -> dict[str, Any]:
        """Add a customer; returns it as the API shows it."""
        return self._add_customer(first_name, last_name, fields)

    def _add_customer(self, first_name: str, last_name: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            customer = {
                "id": self._id("cus"),
                "first_name": first_name,
                "last_name": last_name,
                "email": fields.pop("email", None),
                "mobile_number": fields.pop("mobile_number", None),
                "company": fields.pop("company", None),
                "notifications_enabled": fields.pop("notifications_enabled", False),
                "tags": list(fields.pop("tags", [])),
                "addresses": list(fields.pop("addresses", [])),
                "created_at": _now(),
                "updated_at": _now(),
                **fields,
            }
            self.customers[customer["id"]] = customer
            return dict(customer)

    def add_job(self, customer_id: str, description: str = "", total_amount: int = 0, work_status: str = "scheduled", **fields: Any) -> dict[str, Any]:
        """Add a job for a customer (amounts in cents); returns it as the API shows it."""
        return self._add_job(customer_id, description, total_amount, work_status, fields)

    def _add_job(self, customer_id: str, description: str, total_amount: int, work_status: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if customer_id not in self.customers:
                raise KeyError(f"no customer {customer_id!r} in the fake")
            if work_status not in WORK_STATUSES:
                raise ValueError(f"work_status {work_status!r} is not one of {', '.join(WORK_STATUSES)}")
            customer = self.customers[customer_id]
            job = {
                "id": self._id("job"),
                "invoice_number": str(1000 + len(self.jobs) + 1),
                "description": description,
                "customer": {k: customer[k] for k in ("id", "first_name", "last_name", "email", "mobile_number", "company")},
                "work_status": work_status,
                "total_amount": total_amount,
                "outstanding_balance": fields.pop("outstanding_balance", total_amount),
                "schedule": fields.pop("schedule", {"scheduled_start": None, "scheduled_end": None}),
                "assigned_employees": list(fields.pop("assigned_employees", [])),
                "tags": list(fields.pop("tags", [])),
                "created_at": _now(),
                "updated_at": _now(),
                **fields,
            }
            self.jobs[job["id"]] = job
            return dict(job)

    def seed_demo(self) -> None:
        """Add the demo project's keys, two customers and two jobs."""
        self.add_key(DEMO_DEV_KEY)
        self.add_key(DEMO_PROD_KEY)
        ada = self.add_customer("Ada", "Lovelace", email="ada@example.com", mobile_number="5555550101")
        alan = self.add_customer("Alan", "Turing", email="alan@example.com")
        self.add_job(ada["id"], "Replace water heater", 185000, "scheduled",
                     schedule={"scheduled_start": "2024-03-01T15:00:00Z", "scheduled_end": "2024-03-01T17:00:00Z"})
        self.add_job(alan["id"], "Annual furnace tune-up", 12900, "complete unrated", outstanding_balance=0)

    # --- answering -----------------------------------------------------------------

    def handle(self, request: Request, token: str | None) -> Response:
        with self.lock:
            if request.scheme.lower() not in ("token", "bearer") or token not in self.keys:
                raise HTTPError(401, _UNAUTHORIZED)
            self._throttle()
            parts = [p for p in request.path.split("/") if p]
            method = request.method
            if parts == ["company"] and method == "GET":
                return Response(200, dict(self.company))
            if parts and parts[0] in ("customers", "jobs"):
                store = self.customers if parts[0] == "customers" else self.jobs
                if len(parts) == 2 and method == "GET":
                    item = store.get(parts[1])
                    if item is None:
                        raise HTTPError(404, _NOT_FOUND)
                    return Response(200, dict(item))
                if len(parts) == 1 and method == "GET":
                    return Response(200, self._page(parts[0], store.values(), request.query))
                if len(parts) == 1 and method == "POST":
                    return Response(201, self._create(parts[0], request.body))
            raise HTTPError(404, _NOT_FOUND)

    def _throttle(self) -> None:
        if self.over_rate("company", self.rate_limit):
            raise HTTPError(429, {"error": {"message": "Too Many Requests", "code": 429}}, {"Retry-After": "1"})

    def _page(self, name: str, items: Iterable[Mapping[str, Any]], query: Mapping[str, list[str]]) -> dict[str, Any]:
        rows = list(items)
        if name == "customers" and query.get("q"):
            needle = query["q"][0].lower()
            rows = [c for c in rows if needle in " ".join(str(c.get(k) or "") for k in ("first_name", "last_name", "email", "company")).lower()]
        if name == "jobs" and query.get("customer_id"):
            rows = [j for j in rows if j["customer"]["id"] == query["customer_id"][0]]
        if name == "jobs" and query.get("work_status[]"):
            unknown = [w for w in query["work_status[]"] if w not in WORK_STATUSES]
            if unknown:
                raise _unprocessable(f"work_status {unknown[0]!r} is not one of {', '.join(WORK_STATUSES)}")
            rows = [j for j in rows if j["work_status"] in query["work_status[]"]]
        if name == "jobs":
            rows = self._scheduled_between(rows, query)
        try:
            page = int((query.get("page") or ["1"])[0])
            size = int((query.get("page_size") or ["10"])[0])
        except ValueError:
            raise _unprocessable("page and page_size must be whole numbers") from None
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise _unprocessable(f"page must be 1 or more and page_size between 1 and {MAX_PAGE_SIZE}")
        chunk = rows[(page - 1) * size : page * size]
        return {
            "page": page,
            "page_size": size,
            "total_pages": max(math.ceil(len(rows) / size), 1),
            "total_items": len(rows),
            name: [dict(r) for r in chunk],
        }

    @staticmethod
    def _scheduled_between(rows: list[Mapping[str, Any]], query: Mapping[str, list[str]]) -> list[Mapping[str, Any]]:
        bounds = {}
        for key in ("scheduled_start_min", "scheduled_start_max"):
            if query.get(key):
                bounds[key] = _moment(query[key][0])
                if bounds[key] is None:
                    raise _unprocessable(f"{key} must be an ISO 8601 date-time")
        if not bounds:
            return rows
        kept = []
        for job in rows:
            start = (job.get("schedule") or {}).get("scheduled_start")
            if not start:
                continue
            when = _moment(start)
            if when is None:
                continue
            if "scheduled_start_min" in bounds and when < bounds["scheduled_start_min"]:
                continue
            if "scheduled_start_max" in bounds and when > bounds["scheduled_start_max"]:
                continue
            kept.append(job)
        return kept

    def _create(self, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _unprocessable("the body must be a JSON object")
        # What the service sets itself is never taken from a request: a client
        # cannot pick an id (and so replace another record) or a creation time.
        body = {k: v for k, v in body.items() if k not in _READ_ONLY}
        for key in _TEXT_FIELDS:
            if body.get(key) is not None and not isinstance(body[key], str):
                raise _unprocessable(f"{key} must be a string")
        if name == "customers":
            if not (body.get("first_name") or body.get("last_name") or body.get("email") or body.get("mobile_number")):
                raise _unprocessable("a customer needs a name, an email or a mobile number")
            return self._add_customer(body.pop("first_name", None) or "", body.pop("last_name", None) or "", body)
        customer_id = body.pop("customer_id", None)
        if not isinstance(customer_id, str) or customer_id not in self.customers:
            raise _unprocessable("customer_id must name an existing customer")
        if body.get("work_status", "scheduled") not in WORK_STATUSES:
            raise _unprocessable(f"work_status must be one of {', '.join(WORK_STATUSES)}")
        amount = body.pop("total_amount", 0) or 0
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount != amount or abs(amount) == float("inf") or amount != int(amount):
            raise _unprocessable("total_amount must be a whole number of cents")
        schedule = body.get("schedule")
        if schedule is not None:
            if not isinstance(schedule, dict):
                raise _unprocessable("schedule must be an object with scheduled_start and scheduled_end")
            for key in ("scheduled_start", "scheduled_end"):
                if schedule.get(key) is not None and _moment(schedule[key]) is None:
                    raise _unprocessable(f"schedule.{key} must be an ISO 8601 date-time")
        return self._add_job(customer_id, body.pop("description", None) or "", int(amount), body.pop("work_status", "scheduled"), body)

    # --- webhooks ------------------------------------------------------------------

    def deliver(self, url: str, event: str, resource: Mapping[str, Any], secret: str, timestamp: int | None = None, timeout: float = 5.0) -> int:
        """POST a signed webhook to ``url``, as HousecallPro sends one; returns the HTTP status.

        ``event`` is e.g. ``job.created``; the body is ``{"event", "company_id",
        <resource kind>: resource}`` and carries ``api-timestamp`` (Unix
        seconds, now unless given) and ``api-signature`` (see
        :func:`.webhook_signatures.sign_housecallpro`).
        """
        import json
        import time
        import urllib.error
        import urllib.request

        from envfence_builtins.webhook_service.webhook_signatures import sign_housecallpro

        kind = event.split(".", 1)[0]
        body = json.dumps({"event": event, "company_id": self.company["id"], kind: dict(resource)}).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        headers = {"Content-Type": "application/json", "api-timestamp": stamp, "api-signature": sign_housecallpro(secret, body, stamp)}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
