"""The fake Airtable behaves as Airtable's documentation says, seen through pyairtable and requests."""

from __future__ import annotations

import datetime

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as fo
from pyairtable.formulas import AND, EQ, FIND, GT, GTE, IS_AFTER, IS_BEFORE, LT, NE, NOT, OR, Field, match
from pyairtable.utils import datetime_to_iso_str
from requests.exceptions import HTTPError

from envfence.testing import DEMO_DEV_BASE, DEMO_DEV_TOKEN, FakeAirtable


@pytest.fixture(scope="module")
def server():
    with FakeAirtable(rate_limit=10_000) as fake:
        yield fake


@pytest.fixture
def jobs(server):
    """The seeded Jobs table, emptied, with its own rows for each test."""
    table = Api(DEMO_DEV_TOKEN, endpoint_url=server.url, retry_strategy=None, timeout=(2, 5)).table(DEMO_DEV_BASE, "Jobs")
    table.batch_delete([r["id"] for r in table.all()])
    return table


def refused(call, *args, **kwargs):
    with pytest.raises(HTTPError) as info:
        call(*args, **kwargs)
    assert info.value.response.status_code == 422, info.value.response.text
    return info.value.response.json()["error"]


# --- values --------------------------------------------------------------------------


def test_zero_is_kept_and_an_unchecked_checkbox_is_left_out_as_airtable_does(jobs):
    record = jobs.create({"Name": "J", "Amount": 0, "Paid": False})
    assert record["fields"] == {"Name": "J", "Amount": 0}
    assert jobs.create({"Name": "K", "Amount": 0.0})["fields"]["Amount"] == 0.0
    assert jobs.get(record["id"])["fields"]["Amount"] == 0
    assert jobs.create({"Name": "L", "Paid": True})["fields"]["Paid"] is True


@pytest.mark.parametrize(
    ("fields", "typecast_result"),
    [
        ({"Name": 5}, {"Name": "5"}),
        ({"Notes": 1.5}, {"Notes": "1.5"}),
        ({"Amount": "12.5"}, {"Amount": 12.5}),
        ({"Paid": "yes"}, {"Paid": True}),
        ({"Due": "3/1/2024"}, {"Due": "2024-03-01"}),
        ({"Status": 7}, {"Status": "7"}),
        ({"Tags": "urgent, brand new"}, {"Tags": ["urgent", "brand new"]}),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_unless_typecast(jobs, fields, typecast_result):
    error = refused(jobs.create, fields)
    assert error["type"] in ("INVALID_VALUE_FOR_COLUMN", "INVALID_MULTIPLE_CHOICE_OPTIONS")
    assert jobs.create(fields, typecast=True)["fields"] == typecast_result


def test_a_boolean_is_not_a_number_even_with_typecast_off(jobs):
    assert refused(jobs.create, {"Amount": True})["message"] == 'Field "Amount" cannot accept the provided value'


def test_an_invalid_date_is_refused_and_a_datetime_is_cut_to_the_day(jobs):
    refused(jobs.create, {"Due": "2024-02-30"})
    assert jobs.create({"Due": "2024-02-03T23:10:00.000Z"})["fields"]["Due"] == "2024-02-03"


def test_a_new_select_option_needs_typecast_and_then_joins_the_schema(server, jobs):
    error = refused(jobs.create, {"Status": "on hold"})
    assert error == {"type": "INVALID_MULTIPLE_CHOICE_OPTIONS", "message": 'Insufficient permissions to create new select option ""on hold""'}
    jobs.create({"Status": "on hold"}, typecast=True)
    api = Api(DEMO_DEV_TOKEN, endpoint_url=server.url)
    status = api.base(DEMO_DEV_BASE).schema().table("Jobs").field("Status")
    assert "on hold" in [c.name for c in status.options.choices]


def test_linked_records_take_ids_and_typecast_names_them(server, jobs):
    customers = Api(DEMO_DEV_TOKEN, endpoint_url=server.url).table(DEMO_DEV_BASE, "Customers")
    ada = customers.create({"Name": "Ada"})
    assert jobs.create({"Name": "J", "Client": [ada["id"]]})["fields"]["Client"] == [ada["id"]]
    assert refused(jobs.create, {"Client": ["recNoSuchRecord01"]})["type"] == "ROW_DOES_NOT_EXIST"
    refused(jobs.create, {"Client": ["Grace"]})
    linked = jobs.create({"Name": "K", "Client": ["Ada", "Grace"]}, typecast=True)["fields"]["Client"]
    assert linked[0] == ada["id"]
    assert customers.get(linked[1])["fields"]["Name"] == "Grace"
    # formulas see a link as the linked record's primary field
    assert sorted(r["fields"]["Name"] for r in jobs.all(formula="FIND('Ada', {Client})")) == ["J", "K"]
    assert [r["fields"]["Name"] for r in jobs.all(formula="FIND('Grace', {Client})")] == ["K"]


def test_attachments_get_ids_filenames_and_types_and_are_kept_by_id(jobs):
    record = jobs.create({"Name": "J", "Photos": [{"url": "https://example.com/files/boiler.jpg"}, {"url": "https://example.com/x", "filename": "a.pdf"}]})
    photos = record["fields"]["Photos"]
    assert [p["filename"] for p in photos] == ["boiler.jpg", "a.pdf"]
    assert all(p["id"].startswith("att") and len(p["id"]) == 17 for p in photos)
    assert photos[0]["type"] == "image/jpeg"
    kept = jobs.update(record["id"], {"Photos": [{"id": photos[1]["id"]}]})["fields"]["Photos"]
    assert kept == [photos[1]]
    assert refused(jobs.update, record["id"], {"Photos": [{"filename": "no-url.png"}]})["type"] == "INVALID_ATTACHMENT_OBJECT"


def test_the_seeded_schema_has_every_modelled_field_type(server):
    schema = Api(DEMO_DEV_TOKEN, endpoint_url=server.url).base(DEMO_DEV_BASE).schema()
    types = {f.name: f.type for f in schema.table("Jobs").fields}
    assert set(types.values()) == {
        "singleLineText", "multilineText", "number", "checkbox", "date", "singleSelect",
        "multipleSelects", "multipleAttachments", "multipleRecordLinks",
    }
    client = schema.table("Jobs").field("Client")
    assert client.options.linked_table_id == schema.table("Customers").id


# --- formulas ------------------------------------------------------------------------

ROWS = [
    {"Name": "O'Brien", "Customer": "Anne", "Amount": 1, "Paid": True, "Due": "2024-01-05", "Tags": ["urgent"], "Notes": "  boiler  "},
    {"Name": "back\\slash", "Customer": "bob", "Amount": 150, "Due": "2024-03-01", "Status": "done"},
    {"Name": "Zero", "Amount": 0, "Status": "scheduled"},
    {"Name": "Empty"},
]


@pytest.fixture
def rows(jobs):
    for row in ROWS:
        jobs.create(row)
    return jobs


def names(table, formula, **kwargs):
    return sorted(r["fields"]["Name"] for r in table.all(formula=formula, **kwargs))


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        # what pyairtable's match() and builders write, quotes and backslashes escaped
        (match({"Name": "O'Brien", "Amount": 1}), ["O'Brien"]),
        (match({"Name": "back\\slash"}), ["back\\slash"]),
        (match({"Name": "O'Brien", "Amount": 2}, match_any=True), ["O'Brien"]),
        (match({"Amount": (">", 0)}), ["O'Brien", "back\\slash"]),
        (match({"Amount": (">=", 1), "Paid": False}), ["back\\slash"]),
        (OR(EQ(Field("Customer"), "bob"), LT(Field("Amount"), 1)), ["Empty", "Zero", "back\\slash"]),
        (NOT(EQ(Field("Status"), "done")), ["Empty", "O'Brien", "Zero"]),
        (NE(Field("Customer"), "Anne"), ["Empty", "Zero", "back\\slash"]),
        (AND(GT(Field("Amount"), 0), GTE(Field("Amount"), 150)), ["back\\slash"]),
        (match({"Due": datetime.date(2024, 1, 5)}), ["O'Brien"]),
        (IS_BEFORE(Field("Due"), datetime.date(2024, 2, 1)), ["O'Brien"]),
        (IS_AFTER(Field("Due"), datetime.datetime(2024, 2, 1, 12, 0)), ["back\\slash"]),
        (FIND("Bri", Field("Name")), ["O'Brien"]),
        # written by hand
        ("{Paid}", ["O'Brien"]),
        ("NOT({Paid})", ["Empty", "Zero", "back\\slash"]),
        ("{Paid} = FALSE()", ["Empty", "Zero", "back\\slash"]),
        ("{Amount} = 0", ["Empty", "Zero"]),  # an empty cell equals 0 in Airtable
        ("{Amount} = BLANK()", ["Empty", "Zero"]),
        ("{Customer} = BLANK()", ["Empty", "Zero"]),
        ('{Customer} = "anne"', []),  # = is case-sensitive
        ('LOWER({Customer}) = "anne"', ["O'Brien"]),
        ('UPPER({Customer}) = "BOB"', ["back\\slash"]),
        ("FIND('b', {Customer})", ["back\\slash"]),
        ("FIND('x', {Customer}) = 0", ["Empty", "O'Brien", "Zero", "back\\slash"]),
        ("SEARCH('x', {Customer}) = BLANK()", ["Empty", "O'Brien", "Zero", "back\\slash"]),
        ("SEARCH('nn', {Customer}) = 2", ["O'Brien"]),
        ('TRIM({Notes}) = "boiler"', ["O'Brien"]),
        ("LEN({Name}) = 4", ["Zero"]),
        ("{Amount} * 2 + 1 > 100", ["back\\slash"]),
        ("-{Amount} < -100", ["back\\slash"]),
        ("({Amount} - 1) / 2 = 0", ["O'Brien"]),
        ("{Amount} / 0", []),  # #ERROR! is not true
        ('{Name} & "-" & {Amount} = "Zero-0"', ["Zero"]),
        ('IF({Amount} > 100, "big", "small") = "big"', ["back\\slash"]),
        ('IF({Paid}, TRUE())', ["O'Brien"]),
        ("RECORD_ID() != ''", ["Empty", "O'Brien", "Zero", "back\\slash"]),
        ("IS_AFTER({Due}, DATETIME_PARSE('2024-01-05'))", ["back\\slash"]),
        ("{Due} < DATETIME_PARSE('05/02/2024', 'DD/MM/YYYY')", ["O'Brien"]),
        ("DATETIME_PARSE('not a date')", []),
        ('FIND("urgent", {Tags})', ["O'Brien"]),
        ("TRUE() = 1", ["Empty", "O'Brien", "Zero", "back\\slash"]),
        ("Amount > 100", ["back\\slash"]),  # a one-word field name without braces
        ('{Status} = "done"', ["back\\slash"]),
    ],
)
def test_formula(rows, formula, expected):
    assert names(rows, formula) == expected


def test_record_id_finds_one_record(rows):
    wanted = rows.first(formula=match({"Name": "Zero"}))["id"]
    assert names(rows, f"RECORD_ID() = '{wanted}'") == ["Zero"]


def test_a_function_outside_the_fake_s_subset_is_a_422_naming_it(rows):
    error = refused(rows.all, formula="XOR({Paid}, 1)")
    assert error["type"] == "INVALID_FILTER_BY_FORMULA"
    assert "XOR()" in error["message"] and error["message"].startswith("The formula for filtering records is invalid: ")


def test_an_unknown_field_is_a_422_in_airtable_s_words(rows):
    error = refused(rows.all, formula="{Amont} > 1")
    assert error == {"type": "INVALID_FILTER_BY_FORMULA", "message": "The formula for filtering records is invalid: Unknown field names: amont"}


@pytest.mark.parametrize("formula", ["{Amount} >", "AND(", "'open", "{Amount} = 1)", "NOT(1, 2)", "1 $ 2"])
def test_bad_syntax_is_a_422(rows, formula):
    error = refused(rows.all, formula=formula)
    assert error["message"] == "The formula for filtering records is invalid: Invalid formula. Please check your formula text."


# --- upserts -------------------------------------------------------------------------


def test_an_upserted_record_with_an_id_is_updated_by_that_id(jobs):
    record = jobs.create({"Name": "A", "Amount": 1})
    result = jobs.batch_upsert([{"id": record["id"], "fields": {"Name": "B", "Amount": 2}}], key_fields=["Name"])
    assert result["updatedRecords"] == [record["id"]] and result["createdRecords"] == []
    assert [(r["fields"]["Name"], r["fields"]["Amount"]) for r in jobs.all()] == [("B", 2)]


def test_an_upsert_with_an_unknown_id_fails_and_creates_nothing(jobs):
    with pytest.raises(HTTPError) as info:
        jobs.batch_upsert([{"fields": {"Name": "new"}}, {"id": "recNoSuchRecord01", "fields": {"Name": "X"}}], key_fields=["Name"])
    assert info.value.response.status_code == 404
    assert jobs.all() == []


def test_an_upsert_matching_two_records_fails_the_request(jobs):
    jobs.batch_create([{"Name": "twin", "Amount": 1}, {"Name": "twin", "Amount": 2}])
    error = refused(jobs.batch_upsert, [{"fields": {"Name": "twin", "Amount": 3}}], key_fields=["Name"])
    assert "2 records match" in error["message"]
    assert sorted(r["fields"]["Amount"] for r in jobs.all()) == [1, 2]


def test_upsert_merges_on_several_fields_and_checks_them(jobs):
    jobs.create({"Name": "A", "Customer": "x", "Amount": 1})
    result = jobs.batch_upsert(
        [{"fields": {"Name": "A", "Customer": "x", "Amount": 5}}, {"fields": {"Name": "A", "Customer": "y", "Amount": 6}}],
        key_fields=["Name", "Customer"],
    )
    assert len(result["updatedRecords"]) == 1 and len(result["createdRecords"]) == 1



@pytest.mark.parametrize(
    ("merge_on", "kind"),
    [(["Nme"], "UNKNOWN_FIELD_NAME"), (["Name", "Customer", "Amount", "Notes"], "INVALID_REQUEST_UNKNOWN"), ([], "INVALID_REQUEST_UNKNOWN")],
)
def test_fields_to_merge_on_name_one_to_three_known_fields(server, jobs, merge_on, kind):
    # pyairtable checks key fields itself, so this goes through requests
    response = requests.patch(
        f"{server.url}/v0/{DEMO_DEV_BASE}/Jobs",
        json={"performUpsert": {"fieldsToMergeOn": merge_on}, "records": [{"fields": {"Name": "A", "Nme": "A"}}]},
        headers={"Authorization": f"Bearer {DEMO_DEV_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == kind
    assert jobs.all() == []


# --- views, fields, sort -------------------------------------------------------------


def test_a_view_is_a_named_filter_and_sort(server, rows):
    server.add_view(DEMO_DEV_BASE, "Jobs", "Has amount", formula="{Amount} > 0", sort=[{"field": "Amount", "direction": "desc"}])
    assert [r["fields"]["Name"] for r in rows.all(view="Has amount")] == ["back\\slash", "O'Brien"]
    # an explicit sort overrides the view's, a formula narrows it further
    assert [r["fields"]["Name"] for r in rows.all(view="Has amount", sort=["Amount"])] == ["O'Brien", "back\\slash"]
    assert names(rows, "{Paid}", view="Has amount") == ["O'Brien"]
    schema = Api(DEMO_DEV_TOKEN, endpoint_url=server.url).base(DEMO_DEV_BASE).schema()
    assert "Has amount" in [v.name for v in schema.table("Jobs").views]


def test_an_unknown_view_is_a_422(rows):
    error = refused(rows.all, view="Nope")
    assert error["type"] == "VIEW_NAME_NOT_FOUND"


def test_an_unknown_field_to_show_or_sort_by_is_a_422(rows):
    assert refused(rows.all, fields=["Nope"])["type"] == "UNKNOWN_FIELD_NAME"
    assert refused(rows.all, sort=["Nope"])["type"] == "UNKNOWN_FIELD_NAME"


def test_list_records_by_post_takes_the_same_formula(server, rows):
    response = requests.post(
        f"{server.url}/v0/{DEMO_DEV_BASE}/Jobs/listRecords",
        json={"filterByFormula": "{Amount} >= 150"},
        headers={"Authorization": f"Bearer {DEMO_DEV_TOKEN}"},
        timeout=5,
    )
    assert [r["fields"]["Name"] for r in response.json()["records"]] == ["back\\slash"]


def test_a_formula_nested_too_deeply_is_a_422_not_a_dropped_connection(rows):
    formula = "NOT(" * 5000 + "{Paid}" + ")" * 5000
    response = requests.post(
        f"{rows.api.endpoint_url}/v0/{DEMO_DEV_BASE}/Jobs/listRecords",
        json={"filterByFormula": formula},
        headers={"Authorization": f"Bearer {DEMO_DEV_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_FILTER_BY_FORMULA"


def test_a_field_name_with_a_closing_brace_fails_as_pyairtable_warns_airtable_does(server):
    server.add_table(DEMO_DEV_BASE, "Odd", ["Name", "Odd}Name"])
    table = Api(DEMO_DEV_TOKEN, endpoint_url=server.url).table(DEMO_DEV_BASE, "Odd")
    assert refused(table.all, formula=match({"Odd}Name": "x"}))["type"] == "INVALID_FILTER_BY_FORMULA"


# --- what pyairtable's own integration tests send: long OR()s, dateTimes to the millisecond ---------


@pytest.fixture
def visits(server, jobs):
    if "Visits" not in {t["name"] for t in server.bases[DEMO_DEV_BASE]["tables"].values()}:
        server.add_table(DEMO_DEV_BASE, "Visits", ["Name", {"name": "At", "type": "dateTime"}])
    table = jobs.api.table(DEMO_DEV_BASE, "Visits")
    table.batch_delete([r["id"] for r in table.all()])
    return table


def test_an_or_of_499_record_ids_is_evaluated_as_airtable_does(visits):
    # pyairtable's ORM fetches linked records with OR(RECORD_ID()=..., ...) of up to 499 terms; Airtable documents no cap.
    created = visits.batch_create([{"Name": f"visit {n}"} for n in range(30)])
    wanted = [r["id"] for r in created[::3]]
    decoys = [f"rec{n:014d}" for n in range(499 - len(wanted))]
    formula = fo.OR(*[fo.EQ(fo.RECORD_ID(), record_id) for record_id in wanted + decoys])
    assert sorted(r["id"] for r in visits.all(formula=formula)) == sorted(wanted)
    both = fo.AND(*[fo.NE(fo.RECORD_ID(), record_id) for record_id in decoys + wanted[:1]], fo.NE(fo.Field("Name"), ""))
    assert len(visits.all(formula=both)) == len(created) - 1


def test_a_datetime_keeps_its_milliseconds_and_matches_itself(visits):
    # As pyairtable's test_integration_formula_datetime: write utcnow() to the millisecond, then match() it.
    moment = datetime.datetime(2026, 3, 1, 9, 30, 15, 123456)
    written = datetime_to_iso_str(moment)
    assert written == "2026-03-01T09:30:15.123"
    record = visits.create({"Name": "with ms", "At": written})
    assert record["fields"]["At"] == "2026-03-01T09:30:15.123Z"
    assert visits.get(record["id"])["fields"]["At"] == "2026-03-01T09:30:15.123Z"
    found = visits.first(formula=fo.match({"At": written}))
    assert found and found["id"] == record["id"]
    assert visits.first(formula=fo.match({"At": "2026-03-01T09:30:15.124"})) is None
    assert visits.first(formula=fo.match({"At": moment})) is not None  # DATETIME_PARSE('...123') as match() writes it


def test_finer_than_milliseconds_is_cut_to_the_millisecond(visits):
    record = visits.create({"Name": "micro", "At": "2026-03-01T09:30:15.123999Z"})
    assert record["fields"]["At"] == "2026-03-01T09:30:15.123Z"
