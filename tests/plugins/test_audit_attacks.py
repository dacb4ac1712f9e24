"""The audit trail tried as an adversary would: records added without the key, trails and heads from elsewhere."""

from __future__ import annotations

import json
import shutil

from envfence import audit_chain

KEYED = {"ENVFENCE_AUDIT_KEY_DEV": "k" * 64}


def _trail(root, env="development"):
    return root / "var" / env / "audit" / f"audit_{env}.jsonl"


def _forge_after_head(root, event="run.finished"):
    """What someone who can write the trail but has no key does: append a well-chained record after the head."""
    trail = _trail(root)
    last = json.loads(trail.read_text().splitlines()[-1])
    forged = {**last, "event": event, "seq": last["seq"] + 1, "prev": last["hash"], "data": {"status": "succeeded"}}
    forged.pop("mac", None)
    forged["hash"] = audit_chain.record_hash(forged)
    with trail.open("a") as out:
        out.write(json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n")


def test_a_record_forged_after_a_signed_head_is_found_and_never_sealed(make_project, run_cli):
    """Records after the head once passed as an interrupted append's, and the next append signed them."""
    root = make_project()
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    assert run_cli("audit", "verify", cwd=root, env=KEYED).exit_code == 0
    _forge_after_head(root)
    found = run_cli("audit", "verify", cwd=root, env=KEYED)
    assert found.exit_code == 1 and "without the audit key's signature" in found.stderr, found.output
    before = _trail(root).read_bytes()
    refused = run_cli("init", cwd=root, env=KEYED)
    assert refused.exit_code != 0 and "added without the key" in refused.stderr
    assert _trail(root).read_bytes() == before
    assert run_cli("audit", "verify", cwd=root, env=KEYED).exit_code == 1


def test_records_an_interrupted_keyed_append_left_are_still_sealed(make_project, run_cli):
    """The signature tells a crash from a forgery: records the key made, with the head not yet replaced, are adopted."""
    root = make_project()
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    head_file = _trail(root).with_suffix(".head")
    old_head = head_file.read_bytes()
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    head_file.write_bytes(old_head)  # as a kill between the records' fsync and the head's rename leaves it
    noted = run_cli("audit", "verify", cwd=root, env=KEYED)
    assert noted.exit_code == 0 and "after the head" in noted.stdout, noted.output
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    assert run_cli("audit", "verify", cwd=root, env=KEYED).exit_code == 0


def test_the_other_environment_s_trail_and_head_copied_in_are_found(make_project, run_cli):
    root = make_project()
    assert run_cli("init", cwd=root).exit_code == 0
    assert run_cli("--env", "prod", "init", cwd=root).exit_code == 0
    mine, theirs = _trail(root), _trail(root, "production")
    shutil.copyfile(theirs, mine)
    shutil.copyfile(theirs.with_suffix(".head"), mine.with_suffix(".head"))
    found = run_cli("audit", "verify", cwd=root)
    assert found.exit_code == 1
    assert run_cli("init", cwd=root).exit_code != 0


def test_a_restart_killed_between_its_moves_can_be_run_again(make_project, run_cli):
    """`audit restart` moves the trail aside, then the head, then starts over; a kill -9 may stop it after either move."""
    root = make_project()
    assert run_cli("init", cwd=root).exit_code == 0
    trail = _trail(root)
    head = trail.with_suffix(".head")
    for moved in ((trail,), (trail, head)):  # killed after the first move, or after both
        for path in moved:
            path.rename(path.with_name(path.name + ".broken-killed"))
        assert run_cli("audit", "verify", cwd=root).exit_code == 1
        refused = run_cli("init", cwd=root)  # never a fresh trail that hides the interruption
        assert refused.exit_code != 0 and "audit restart" in refused.stderr
        assert not trail.exists() or trail.stat().st_size == 0
        assert run_cli("audit", "restart", "--reason", "restart was killed", cwd=root).exit_code == 0
        verified = run_cli("audit", "verify", cwd=root)
        assert verified.exit_code == 0 and "restart was killed" in verified.stdout, verified.output
        assert run_cli("init", cwd=root).exit_code == 0
        for path in moved:  # the evidence is kept
            assert path.with_name(path.name + ".broken-killed").exists()
        for path in moved:
            path.with_name(path.name + ".broken-killed").unlink()


PROD_HOST = {"ENVFENCE_HOSTNAME": "web-prod-01"}


def test_strict_init_creates_the_audit_key_outside_the_tree_so_the_trail_is_signed(make_project, run_cli):
    import stat

    root = make_project(settings="[hostname]\nallow_stand_in = true\n")
    created = run_cli("--env", "prod", "init", cwd=root, env=PROD_HOST)
    assert created.exit_code == 0, created.output
    key = root / ".envfence" / "keys" / "production.audit.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600 and f"created the audit key {key}" in created.output
    assert not (root / "var" / "production" / "audit" / "production.audit.key").exists()
    verified = run_cli("--env", "prod", "audit", "verify", cwd=root, env=PROD_HOST)
    assert verified.exit_code == 0 and "signed head" in verified.stdout, verified.output
    first = json.loads(_trail(root, "production").read_text().splitlines()[0])
    assert isinstance(first.get("mac"), str)  # signed from its first record
    again = run_cli("--env", "prod", "init", cwd=root, env=PROD_HOST)
    assert again.exit_code == 0 and "audit key" not in again.output  # created once, never replaced
    assert run_cli("init", cwd=root).exit_code == 0
    assert not (root / ".envfence" / "keys" / "development.audit.key").exists()  # development is not strict


def test_an_unsigned_record_after_a_signed_head_fails_verify_even_without_the_key(make_project, run_cli, tmp_path):
    root = make_project()
    assert run_cli("init", cwd=root).exit_code == 0
    assert run_cli("audit", "keygen", cwd=root).exit_code == 0
    assert run_cli("init", cwd=root).exit_code == 0  # a signed record, a signed head
    _forge_after_head(root)
    key = root / ".envfence" / "keys" / "development.audit.key"
    key.rename(tmp_path / "key-kept-elsewhere")  # a verifier without the key
    found = run_cli("audit", "verify", cwd=root)
    assert found.exit_code == 1 and "after the signed head" in found.stderr, found.output


def test_an_unsigned_record_after_signed_ones_is_found_though_the_head_was_rewritten_unsigned(make_project, run_cli, tmp_path):
    root = make_project()
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    _forge_after_head(root)
    last = json.loads(_trail(root).read_text().splitlines()[-1])
    head = _trail(root).with_suffix(".head")
    data = json.loads(head.read_text())
    data.update(seq=last["seq"], hash=last["hash"])
    data.pop("mac")
    head.write_text(json.dumps(data, sort_keys=True) + "\n")  # the forger reseals, unsigned
    found = run_cli("audit", "verify", cwd=root)  # no key at hand
    assert found.exit_code == 1 and "has no signature though the trail is signed" in found.stderr, found.output


def test_appending_to_a_signed_trail_without_the_key_is_refused_and_the_trail_kept(make_project, run_cli):
    root = make_project()
    assert run_cli("init", cwd=root, env=KEYED).exit_code == 0
    before = _trail(root).read_bytes()
    refused = run_cli("init", cwd=root)  # the key's variable is not set here
    assert refused.exit_code != 0 and "the trail is signed" in refused.stderr and "ENVFENCE_AUDIT_KEY_" in refused.stderr, refused.output
    assert _trail(root).read_bytes() == before
    assert run_cli("audit", "verify", cwd=root, env=KEYED).exit_code == 0
