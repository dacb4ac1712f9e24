"""The models behave as value objects: equality, hashing, repr, immutability, copies, memory and JSON.

These hold whatever builds the classes (they were written against the attrs
classes and pass unchanged on :mod:`envfence.slotted`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import pickle
import sys
import weakref
from pathlib import Path

import pytest

from envfence.models import (
    AuditEvent,
    Automation,
    ConfigLayer,
    EnvPaths,
    Environment,
    Failure,
    Finding,
    Report,
    RunOutcome,
    Secret,
)
from envfence.profiles import DevelopmentProfile, ProductionProfile, Profile

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
CANARY = "canary-9f2c41d7e0"


def evolve(inst, **changes):
    from envfence import slotted

    return slotted.evolve(inst, **changes)


def test_repr_shows_fields_in_order_and_hides_what_must_not_show():
    env = Environment("production", "flag", "--env prod", WHEN)
    assert repr(env) == (
        "Environment(name='production', method='flag', evidence='--env prod', "
        "decided_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc))"
    )
    layer = ConfigLayer(".env", {"A": "1", "TOKEN": CANARY}, 10)
    assert "values=<2 values>" in repr(layer) and CANARY not in repr(layer)
    assert repr(Secret(CANARY)) == "Secret('********')"
    assert repr(Finding("X_Y", "warning", "m")) == (
        "Finding(code='X_Y', severity='warning', message='m', remediation='', key=None, plugin=None, "
        "file=None, line=None, confirmable=False)"
    )


def test_a_subclass_redefining_a_field_moves_it_last_as_before():
    assert repr(DevelopmentProfile("web")).startswith("DevelopmentProfile(name='web', strict=False, ")
    assert repr(DevelopmentProfile("web")).endswith(", debug=True, based_on='development')")
    assert repr(ProductionProfile("web")).startswith("ProductionProfile(name='web', based_on='production', strict=True")
    assert ProductionProfile("web").dir_mode == 0o700 and Profile().dir_mode == 0o755
    # A redefined field reuses its base's slot: the same size as the base.
    assert sys.getsizeof(ProductionProfile("web")) == sys.getsizeof(Profile()) == 32 + 8 * 11


def test_equality_and_hash_follow_the_compared_fields_only():
    a, b = Finding("X", "error", "m", key="K"), Finding("X", "error", "m", key="K")
    assert a == b and hash(a) == hash(b) and not (a != b)
    assert a != evolve(a, key="L") and len({a, b, evolve(a, key="L")}) == 2
    one = Failure("e1", "bug", "boom", exception=ValueError("x"))
    two = Failure("e1", "bug", "boom", exception=KeyError("y"))
    assert one == two and hash(one) == hash(two)  # the exception is not compared
    assert Secret(CANARY) == Secret(CANARY) and Secret(CANARY) != Secret("other")
    assert hash(Secret(CANARY)) == hash(Secret(CANARY))
    # Another class with the same fields is not equal.
    assert DevelopmentProfile("x") != ProductionProfile("x") and Profile("x") != DevelopmentProfile("x")
    assert (Environment("a", "flag", "", WHEN) == "a") is False


def test_frozen_models_refuse_assignment_and_deletion():
    finding = Finding("X", "error", "m")
    with pytest.raises(AttributeError):
        finding.code = "Y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del finding.code  # type: ignore[misc]
    with pytest.raises(AttributeError):
        finding.extra = 1  # type: ignore[attr-defined]
    assert finding.code == "X"


def test_defaults_factories_converters_and_post_init_run():
    a, b = AuditEvent("run.started", "production"), AuditEvent("run.started", "production")
    assert a.data == {} and a.data is not b.data  # a factory, once per instance
    assert a.at.tzinfo is not None
    assert EnvPaths("production", Path("/x")).dirs == {}
    with pytest.raises(ValueError, match="severity"):
        Finding("X", "fatal", "m")
    with pytest.raises(TypeError):
        Finding("X")  # type: ignore[call-arg]
    # Report's converter folds repeated messages, also through evolve.
    twice = Report((Finding("X", "warning", "same"), Finding("Y", "error", "same")))
    assert [(f.code, f.severity) for f in twice.findings] == [("X", "error")]
    assert len(evolve(twice, findings=twice.findings * 2).findings) == 1


def test_evolve_copies_with_changes_and_keeps_the_original():
    env = Environment("production", "flag", "--env prod", WHEN)
    changed = evolve(env, evidence="ENVIRONMENT=prod")
    assert changed.evidence == "ENVIRONMENT=prod" and changed.decided_at == WHEN and env.evidence == "--env prod"
    assert evolve(Secret(CANARY)).reveal() == CANARY  # a field named _value is evolved as value
    with pytest.raises(TypeError):
        evolve(env, nonsense=1)


def test_instances_have_slots_weak_references_and_their_memory_size():
    finding = Finding("X", "error", "m")
    assert not hasattr(finding, "__dict__")
    assert weakref.ref(finding)() is finding
    # The object and garbage-collector headers (32), then one pointer per field and the weak reference slot.
    assert sys.getsizeof(finding) == 32 + 8 * 10
    assert sys.getsizeof(Environment("a", "flag")) == 32 + 8 * 5
    assert sys.getsizeof(Secret(CANARY)) == 32 + 8 * 2


def test_copies_and_pickles_round_trip_but_secrets_refuse_pickling():
    outcome = RunOutcome("r1", "sync", "production", "succeeded", 0, WHEN, WHEN, metrics={"rows": 3})
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert copy.deepcopy(outcome) == outcome and copy.copy(outcome) == outcome
    automation = Automation("sync", command=("true",))
    assert pickle.loads(pickle.dumps(automation)) == automation
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(CANARY))


def test_json_output_of_models_through_the_cli(envfence_project):
    envfence_project.write(".env", f"A=1\nAPI_TOKEN={CANARY}\n")
    result = envfence_project.run("--json", "detect")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["environment"], data["method"]) == ("development", "default")
    assert list(data) == ["environment", "method", "evidence", "decided_at", "profile", "host", "root", "settings", "notes"]
    assert list(data["host"]) == ["hostname", "source", "machine_id", "class", "ambiguous", "enrolled", "rule",
                                  "matches", "suspects", "real"]
    assert list(data["root"]) == ["path", "method"]
    shown = envfence_project.run("--json", "config", "show")
    assert shown.exit_code == 0, shown.output
    assert CANARY not in shown.output
    plugins = envfence_project.run("--json", "plugins")
    assert plugins.exit_code == 0, plugins.output
    records = json.loads(plugins.output)
    assert records and all(list(r) == ["name", "status", "distribution", "version", "module", "hooks", "reason",
                                       "offers"] for r in records)
