"""The fake HousecallPro, as requests sees it over real HTTP."""

from __future__ import annotations

import pytest
import requests

from envfence.testing import DEMO_DEV_KEY, FakeHousecallPro


@pytest.fixture
def fake():
    with FakeHousecallPro() as server:
        yield server


def get(fake, path, key=DEMO_DEV_KEY, **params):
    return requests.get(f"{fake.url}{path}", headers={"Authorization": f"Token {key}"}, params=params, timeout=5)


def test_company_answers_for_a_seeded_key(fake):
    response = get(fake, "/company")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Home Services"


def test_bad_or_missing_key_gets_401(fake):
    assert get(fake, "/company", key="hcp_wrong_key_000000000000").status_code == 401
    assert requests.get(f"{fake.url}/company", timeout=5).status_code == 401


def test_customers_are_paged(fake):
    for i in range(12):
        fake.add_customer(f"Test{i}", "Customer")
    first = get(fake, "/customers", page=1, page_size=10).json()
    assert first["total_items"] == 14 and first["total_pages"] == 2 and len(first["customers"]) == 10
    second = get(fake, "/customers", page=2, page_size=10).json()
    assert len(second["customers"]) == 4
    assert get(fake, "/customers", q="lovelace").json()["customers"][0]["first_name"] == "Ada"


def test_jobs_list_filter_and_fetch(fake):
    jobs = get(fake, "/jobs").json()["jobs"]
    assert {j["description"] for j in jobs} == {"Replace water heater", "Annual furnace tune-up"}
    ada = jobs[0]["customer"]["id"]
    assert [j["customer"]["id"] for j in get(fake, "/jobs", customer_id=ada).json()["jobs"]] == [ada]
    assert get(fake, f"/jobs/{jobs[0]['id']}").json()["total_amount"] == jobs[0]["total_amount"]
    assert get(fake, "/jobs/job_nope").status_code == 404


def test_create_customer_and_job(fake):
    headers = {"Authorization": f"Token {DEMO_DEV_KEY}"}
    customer = requests.post(f"{fake.url}/customers", json={"first_name": "Grace", "last_name": "Hopper"}, headers=headers, timeout=5)
    assert customer.status_code == 201
    job = requests.post(f"{fake.url}/jobs", json={"customer_id": customer.json()["id"], "description": "Fix leak"}, headers=headers, timeout=5)
    assert job.status_code == 201 and job.json()["customer"]["first_name"] == "Grace"
    bad = requests.post(f"{fake.url}/jobs", json={"customer_id": "cus_nope"}, headers=headers, timeout=5)
    assert bad.status_code == 422


def test_rate_limit_when_set():
    with FakeHousecallPro(rate_limit=2) as fake:
        fake.clock = lambda: 0.0  # every request in the same second
        codes = [get(fake, "/company").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_empty_fake_knows_no_key():
    with FakeHousecallPro(seed=False) as fake:
        assert get(fake, "/company").status_code == 401
        fake.add_key("hcp_custom_key_123456789012")
        assert get(fake, "/company", key="hcp_custom_key_123456789012").status_code == 200


@pytest.mark.parametrize("params", [{"page": 0}, {"page_size": 0}, {"page_size": 201}, {"page": "two"}])
def test_pages_out_of_bounds_get_422_in_the_error_shape(fake, params):
    response = get(fake, "/customers", **params)
    assert response.status_code == 422
    assert set(response.json()["error"]) == {"message", "code"} and response.json()["error"]["code"] == 422


def test_a_page_past_the_end_is_empty(fake):
    body = get(fake, "/customers", page=5, page_size=10).json()
    assert body["customers"] == [] and body["total_pages"] == 1 and body["page"] == 5


def test_jobs_filter_by_work_status_and_schedule(fake):
    assert [j["description"] for j in get(fake, "/jobs", **{"work_status[]": "complete unrated"}).json()["jobs"]] == ["Annual furnace tune-up"]
    assert get(fake, "/jobs", **{"work_status[]": "finished"}).status_code == 422
    window = get(fake, "/jobs", scheduled_start_min="2024-03-01T00:00:00Z", scheduled_start_max="2024-03-02T00:00:00Z").json()
    assert [j["description"] for j in window["jobs"]] == ["Replace water heater"]
    assert get(fake, "/jobs", scheduled_start_min="2024-03-02T00:00:00Z").json()["jobs"] == []
    assert get(fake, "/jobs", scheduled_start_min="yesterday").status_code == 422


def test_a_job_with_an_unknown_work_status_is_refused(fake):
    headers = {"Authorization": f"Bearer {DEMO_DEV_KEY}"}
    customer = get(fake, "/customers").json()["customers"][0]["id"]
    bad = requests.post(f"{fake.url}/jobs", json={"customer_id": customer, "work_status": "done"}, headers=headers, timeout=5)
    assert bad.status_code == 422 and "work_status" in bad.json()["error"]["message"]


def test_deliver_sends_a_webhook_that_envfence_s_verifier_accepts(fake):
    import http.server
    import threading

    from envfence_builtins.webhook_service.webhook_signatures import SignatureError, verify_housecallpro

    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = get(fake, "/jobs").json()["jobs"][0]
        status = fake.deliver(f"http://127.0.0.1:{server.server_address[1]}/hook", "job.created", job, secret="whk-secret")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 204
    headers, body = received[0]
    lower = {k.lower(): v for k, v in headers.items()}
    verify_housecallpro("whk-secret", body, lower["api-signature"], lower["api-timestamp"])
    with pytest.raises(SignatureError):
        verify_housecallpro("another-secret", body, lower["api-signature"], lower["api-timestamp"])
    import json

    assert json.loads(body)["job"]["id"] == job["id"] and json.loads(body)["event"] == "job.created"


def post(fake, path, body=None, raw=None):
    headers = {"Authorization": f"Token {DEMO_DEV_KEY}", "Content-Type": "application/json"}
    return requests.post(f"{fake.url}{path}", headers=headers, json=body if raw is None else None, data=raw, timeout=5)


def test_bad_bodies_and_bounds_get_a_422_never_a_server_error(fake):
    customer = get(fake, "/customers").json()["customers"][0]["id"]
    for body, says in [
        ({"first_name": ["x"]}, "first_name must be a string"),
        ({"customer_id": customer, "total_amount": "abc"}, "total_amount must be a whole number of cents"),
        ({"customer_id": customer, "total_amount": [1]}, "total_amount must be a whole number of cents"),
        ({"customer_id": [customer]}, "customer_id must name an existing customer"),
        ({"customer_id": customer, "schedule": {"scheduled_start": "garbage"}}, "schedule.scheduled_start must be an ISO 8601 date-time"),
        ([1, 2], "the body must be a JSON object"),
    ]:
        path = "/customers" if "first_name" in str(body) else "/jobs"
        response = post(fake, path, body)
        assert (response.status_code, response.json()["error"]["message"]) == (422, says), body
    huge = post(fake, "/jobs", raw=f'{{"customer_id": "{customer}", "total_amount": 1e400}}')
    assert huge.status_code == 422
    # A naive bound is read as UTC instead of failing to compare with the jobs' aware times.
    for bound in ("2024-03-01T00:00:00", "2024-03-01"):
        answer = get(fake, "/jobs", scheduled_start_min=bound)
        assert answer.status_code == 200 and answer.json()["total_items"] == 1


def test_a_client_never_picks_an_id_or_replaces_a_record(fake):
    first = get(fake, "/customers").json()["customers"][0]
    created = post(fake, "/customers", {"first_name": "Mallory", "id": first["id"], "self": 1})
    assert created.status_code == 201
    assert created.json()["id"] != first["id"]
    assert get(fake, f"/customers/{first['id']}").json()["first_name"] == first["first_name"]
