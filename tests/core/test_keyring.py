"""The key ring: each environment's keys found, created and read in one place, never through a link."""

from __future__ import annotations

import os
import stat

import pytest

import envfence
from envfence import audit_chain, keyring

CANARY = "canary-keyring-7c1e-never-show"


@pytest.mark.parametrize("linked", [".envfence", ".envfence/keys"])
@pytest.mark.parametrize("command", [("secret", "keygen"), ("audit", "keygen")])
def test_keygen_never_writes_through_a_linked_parent_directory(make_project, run_cli, tmp_path, command, linked):
    root = make_project({".env": "APP=sync\n"})
    run_cli("init", cwd=root)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keys").mkdir(parents=True)
    (root / linked).parent.mkdir(exist_ok=True)
    os.symlink(elsewhere, root / linked)
    result = run_cli(*command, cwd=root)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "symlink" in result.stderr or "symbolic link" in result.stderr
    assert [p.name for p in elsewhere.rglob("*")] == ["keys"]


def test_both_kinds_of_key_live_side_by_side_and_are_owner_only(make_project, run_cli):
    root = make_project()
    run_cli("init", cwd=root)
    assert run_cli("secret", "keygen", cwd=root).exit_code == 0
    assert run_cli("audit", "keygen", cwd=root).exit_code == 0
    keys = root / ".envfence" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == ["development.audit.key", "development.key"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.iterdir())
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert keyring.read(root, "development", "audit") == (keys / "development.audit.key").read_bytes().strip()


def test_a_key_read_through_a_linked_directory_is_refused(make_project, run_cli, tmp_path):
    """Someone who can swap .envfence/keys for a link must not choose the key that signs or decrypts."""
    root = make_project({".env.development": "DEV_API_TOKEN=enc:fernet:abc\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "development.key").write_bytes(b"planted\n")
    os.chmod(elsewhere / "development.key", 0o600)
    (root / ".envfence").mkdir()
    os.symlink(elsewhere, root / ".envfence" / "keys")
    result = run_cli("config", "show", cwd=root)
    assert result.exit_code == 4 and "symbolic link" in result.stderr and "Traceback" not in result.output


def test_the_variable_wins_over_the_file_and_its_value_is_never_shown(make_project):
    root = make_project()
    key = keyring.find(root, "production", "PROD", {"ENVFENCE_AUDIT_KEY_PROD": f" {CANARY} "}, "audit")
    assert key.material == CANARY.encode() and key.source == "ENVFENCE_AUDIT_KEY_PROD"
    assert CANARY not in repr(key)
    assert keyring.find(root, "production", "PROD", {}, "audit") is None


def test_an_empty_key_file_is_named(make_project):
    root = make_project()
    path = keyring.create(root, "development", "audit", b"\n")
    with pytest.raises(envfence.EnvfenceError, match="development.audit.key: the key file is empty"):
        keyring.read(root, "development", "audit")
    assert path.exists()


def test_records_chained_by_the_core_verify_and_an_edit_breaks_them():
    entries = [{"at": "2026-01-01T00:00:00+00:00", "event": f"e{n}", "environment": "production", "data": {}} for n in range(3)]
    start = audit_chain.genesis("production", "audit_production.jsonl")
    records = list(audit_chain.link(entries, seq=0, prev=start, key=b"k", environment="production", name="audit_production.jsonl"))
    assert [r["seq"] for r in records] == [1, 2, 3] and records[0]["prev"] == start
    assert all(audit_chain.record_hash(r) == r["hash"] for r in records)
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert not any(audit_chain.unsigned(b"k", "production", "audit_production.jsonl", r) for r in records)
    assert audit_chain.unsigned(b"other", "production", "audit_production.jsonl", records[0])
    edited = {**records[1], "event": "forged"}
    assert audit_chain.record_hash(edited) != edited["hash"]
    assert audit_chain.genesis("development", "audit_production.jsonl") != start
