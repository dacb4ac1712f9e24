"""The fake Airtable, as pyairtable and requests see it over real HTTP."""

from __future__ import annotations


import pytest
import requests
from pyairtable import Api
from requests.exceptions import HTTPError

from envfence.testing import DEMO_DEV_BASE, DEMO_DEV_TOKEN, DEMO_PROD_BASE, FakeAirtable

TOKEN = "patTestTokenAbc123.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
BASE = "appTestBase000001"


@pytest.fixture
def fake():
    with FakeAirtable(seed=False, rate_limit=1000) as server:
        server.add_token(TOKEN, bases=[BASE])
        server.add_base(BASE, "Ops")
        server.add_table(BASE, "Status", ["Automation", {"name": "Runs", "type": "number"}, {"name": "State", "type": "singleSelect", "choices": ["ok", "failed"]}])
        yield server


def api(fake, token=TOKEN):
    return Api(token, endpoint_url=fake.url, retry_strategy=None, timeout=(2, 5))


def test_seeded_fake_answers_whoami_and_schema_for_the_demo_token():
    with FakeAirtable() as fake:
        client = Api(DEMO_DEV_TOKEN, endpoint_url=fake.url)
        assert client.whoami()["id"] == "usrDemoDeveloper"
        schema = client.base(DEMO_DEV_BASE).schema()
        jobs = schema.table("Jobs")
        assert [f.name for f in jobs.fields][:3] == ["Name", "Customer", "Status"]
        assert jobs.id.startswith("tbl") and len(jobs.id) == 17
        names = [r["fields"]["Name"] for r in client.table(DEMO_DEV_BASE, "Jobs").all()]
        assert names == ["JOB-1001", "JOB-1002"]


def test_seeded_dev_token_cannot_see_the_production_base():
    with FakeAirtable() as fake:
        with pytest.raises(HTTPError) as info:
            Api(DEMO_DEV_TOKEN, endpoint_url=fake.url).base(DEMO_PROD_BASE).schema()
        assert info.value.response.status_code == 403
        assert info.value.response.json()["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


def test_unknown_token_gets_401(fake):
    with pytest.raises(HTTPError) as info:
        api(fake, "patWrongToken00000." + "0" * 64).whoami()
    assert info.value.response.status_code == 401
    assert info.value.response.json()["error"]["type"] == "AUTHENTICATION_REQUIRED"


def test_missing_token_gets_401(fake):
    response = requests.get(f"{fake.url}/v0/meta/whoami", timeout=5)
    assert response.status_code == 401


def test_base_that_does_not_exist_gets_403(fake):
    with pytest.raises(HTTPError) as info:
        api(fake).table("appNoSuchBase0001", "Status").all()
    assert info.value.response.status_code == 403


def test_create_update_and_list_records(fake):
    table = api(fake).table(BASE, "Status")
    created = table.create({"Automation": "sync", "Runs": 1, "State": "ok"})
    assert created["id"].startswith("rec") and created["fields"]["Runs"] == 1
    updated = table.update(created["id"], {"Runs": 2})
    assert updated["fields"] == {"Automation": "sync", "Runs": 2, "State": "ok"}
    assert table.get(created["id"])["fields"]["Runs"] == 2
    assert fake.records(BASE, "Status")[0]["fields"]["Runs"] == 2


def test_batch_create_and_batch_update_over_ten_records(fake):
    table = api(fake).table(BASE, "Status")
    created = table.batch_create([{"Automation": f"job-{i}", "Runs": i} for i in range(23)])
    assert len(created) == 23
    updated = table.batch_update([{"id": r["id"], "fields": {"State": "failed"}} for r in created])
    assert {r["fields"]["State"] for r in updated} == {"failed"}
    # pyairtable splits into requests of ten, as Airtable requires.
    posts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/Status")]
    assert len(posts) == 3


def test_batch_of_more_than_ten_in_one_request_is_refused(fake):
    response = requests.post(
        f"{fake.url}/v0/{BASE}/Status",
        json={"records": [{"fields": {"Automation": str(i)}} for i in range(11)]},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 422


def test_upsert_updates_matching_records_and_creates_the_rest(fake):
    table = api(fake).table(BASE, "Status")
    table.create({"Automation": "sync", "Runs": 1})
    result = table.batch_upsert(
        [{"fields": {"Automation": "sync", "Runs": 5}}, {"fields": {"Automation": "report", "Runs": 1}}],
        key_fields=["Automation"],
    )
    assert len(result["createdRecords"]) == 1 and len(result["updatedRecords"]) == 1
    assert sorted((r["fields"]["Automation"], r["fields"]["Runs"]) for r in table.all()) == [("report", 1), ("sync", 5)]


def test_list_pages_through_every_record(fake):
    fake.add_records(BASE, "Status", [{"Automation": f"a{i:03d}", "Runs": i} for i in range(250)])
    table = api(fake).table(BASE, "Status")
    pages = list(table.iterate(page_size=100))
    assert [len(p) for p in pages] == [100, 100, 50]
    assert len({r["id"] for r in table.all()}) == 250
    assert len(table.all(max_records=30)) == 30


def test_formula_sort_and_fields(fake):
    from pyairtable.formulas import match

    fake.add_records(BASE, "Status", [{"Automation": "b", "Runs": 2, "State": "ok"}, {"Automation": "a", "Runs": 1, "State": "failed"}, {"Automation": "c", "Runs": 3, "State": "ok"}])
    table = api(fake).table(BASE, "Status")
    assert [r["fields"]["Automation"] for r in table.all(formula=match({"State": "ok"}), sort=["-Runs"])] == ["c", "b"]
    assert table.first(formula=match({"Automation": "a", "Runs": 1}))["fields"]["State"] == "failed"
    assert table.all(fields=["Runs"], sort=["Runs"])[0]["fields"] == {"Runs": 1}


def test_unknown_field_gets_422(fake):
    with pytest.raises(HTTPError) as info:
        api(fake).table(BASE, "Status").create({"Automaton": "typo"})
    assert info.value.response.status_code == 422
    assert info.value.response.json()["error"] == {"type": "UNKNOWN_FIELD_NAME", "message": 'Unknown field name: "Automaton"'}


def test_wrong_value_type_gets_422_unless_typecast(fake):
    table = api(fake).table(BASE, "Status")
    with pytest.raises(HTTPError) as info:
        table.create({"Runs": "three"})
    assert info.value.response.status_code == 422
    assert table.create({"Runs": "3"}, typecast=True)["fields"]["Runs"] == 3


def test_unknown_record_gets_404(fake):
    with pytest.raises(HTTPError) as info:
        api(fake).table(BASE, "Status").get("recNoSuchRecord01")
    assert info.value.response.status_code == 404


def test_sixth_request_in_a_second_on_one_base_gets_429_for_thirty_seconds():
    with FakeAirtable(seed=False) as fake:
        fake.add_token(TOKEN, bases=[BASE])
        fake.add_table(BASE, "Status")
        table = api(fake).table(BASE, "Status")
        fake.clock = lambda: 1000.0  # every request in the same second
        statuses = []
        for _ in range(6):
            try:
                table.all()
                statuses.append(200)
            except HTTPError as exc:
                statuses.append(exc.response.status_code)
        assert statuses == [200] * 5 + [429]
        assert fake.requests[-1].path == f"/v0/{BASE}/Status"
        fake.clock = lambda: 1029.9  # Airtable's penalty: 30 s of 429, whatever the rate meanwhile
        with pytest.raises(HTTPError) as info:
            table.all()
        assert info.value.response.status_code == 429
        assert info.value.response.json()["errors"][0]["error"] == "RATE_LIMIT_REACHED"
        fake.clock = lambda: 1030.0  # then the base is served again
        assert table.all() == []


def test_pyairtable_default_retry_waits_out_the_rate_limit():
    # a short penalty, so that pyairtable's own backoff (about 1.5 s) outlasts it
    with FakeAirtable(seed=False, rate_limit=2, penalty=0.3) as fake:
        fake.add_token(TOKEN, bases=[BASE])
        fake.add_table(BASE, "Status")
        table = Api(TOKEN, endpoint_url=fake.url).table(BASE, "Status")
        for _ in range(4):
            assert table.all() == []


def test_the_fake_keeps_no_token_in_its_request_log(fake):
    api(fake).whoami()
    assert TOKEN not in repr(fake.requests)
    assert fake.requests[-1].scheme == "Bearer"


def test_the_port_is_released_after_the_block():
    with FakeAirtable() as fake:
        url = fake.url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v0/meta/whoami", timeout=2)


@pytest.mark.parametrize("formula", ["-" * 900 + "1", "&".join(['"x"'] * 3000), "(" * 2000 + "1" + ")" * 2000])
def test_a_formula_nested_too_deep_is_a_422_never_a_server_error(fake, formula):
    response = requests.get(
        f"{fake.url}/v0/{BASE}/Status", params={"filterByFormula": formula},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    # The server is still there for the next request.
    ok = requests.get(f"{fake.url}/v0/{BASE}/Status", params={"filterByFormula": "1"},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200


def test_bad_numbers_ids_and_page_sizes_get_a_422_or_404_never_a_server_error(fake):
    url = f"{fake.url}/v0/{BASE}/Status"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for raw in ('{"records":[{"fields":{"Runs":1e400}}]}', '{"records":[{"fields":{"Runs":NaN}}]}',
                '{"records":[{"fields":{"Runs":"1e400"}}],"typecast":true}'):
        answer = requests.post(url, data=raw, headers=headers, timeout=5)
        assert (answer.status_code, answer.json()["error"]["type"]) == (422, "INVALID_VALUE_FOR_COLUMN"), raw
    answer = requests.patch(url, json={"records": [{"id": ["a"], "fields": {"Automation": "x"}}]}, headers=headers, timeout=5)
    assert answer.status_code == 404
    for params in ({"pageSize": "0"}, {"pageSize": "-1"}, {"pageSize": "1e3"}, {"maxRecords": "-1"}):
        answer = requests.get(url, params=params, headers=headers, timeout=5)
        assert answer.status_code == 422 and "at least 1" in answer.json()["error"]["message"], params
    # Every answer is JSON that a strict parser reads (no Infinity, no NaN).
    import json

    json.loads(requests.get(url, headers=headers, timeout=5).text, parse_constant=lambda c: pytest.fail(c))
