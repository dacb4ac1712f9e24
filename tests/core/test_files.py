"""envfence.files: the one way envfence writes in an environment's tree."""

from __future__ import annotations

import os
import stat

import pytest

from envfence import files
from envfence.errors import SafetyError
from envfence.models import EnvPaths


@pytest.fixture
def tree(tmp_path):
    base = tmp_path / "var" / "development"
    base.mkdir(parents=True)
    return EnvPaths("development", base)


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_write_atomic_replaces_the_file_whole_and_leaves_no_temporary(tree):
    files.write_atomic(tree, "backups/config/1/.env", "A=1\n")
    files.write_atomic(tree, "backups/config/1/.env", "A=2\n")
    folder = tree.base / "backups" / "config" / "1"
    assert (folder / ".env").read_text() == "A=2\n"
    assert sorted(os.listdir(folder)) == [".env"]
    assert mode(folder / ".env") == 0o600 and mode(folder) == 0o700


def test_a_scratch_file_is_written_atomically_without_flushing_and_a_kept_file_is_flushed(tree, tmp_path, monkeypatch):
    flushed = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (flushed.append(fd), real(fd))[1])
    (tmp_path / "elsewhere").write_text("x")
    os.makedirs(tree.base / "metrics")
    os.symlink(tmp_path / "elsewhere", tree.base / "metrics" / "run-1.txt")
    path = files.write_atomic(tree, "metrics/run-1.txt", b"", durable=False)
    assert flushed == [] and not path.is_symlink() and path.read_bytes() == b""
    assert (tmp_path / "elsewhere").read_text() == "x"  # the link was replaced, not followed
    assert sorted(os.listdir(tree.base / "metrics")) == ["run-1.txt"] and mode(path) == 0o600
    files.write_atomic(tree, "state/kept.json", "{}")
    assert len(flushed) == 2  # the file, then its directory


@pytest.mark.parametrize("where", ["backups", "backups/config", "backups/config/1"])
def test_a_symlink_at_any_directory_on_the_way_is_refused_and_nothing_lands_at_its_target(tree, tmp_path, where):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tree.base / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    with pytest.raises(SafetyError, match=f"{where}: it is a symlink") as caught:
        files.write_atomic(tree, "backups/config/1/.env", "SECRET=x\n")
    assert "remove the link" in caught.value.hint
    assert list(target.iterdir()) == []


def test_a_symlink_at_the_file_is_replaced_not_followed(tree, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tree.base / "manifest.json").symlink_to(victim)
    files.write_atomic(tree, "manifest.json", "{}")
    assert victim.read_text() == "keep me"
    assert not (tree.base / "manifest.json").is_symlink()


@pytest.mark.parametrize("path", ["../x", "../../../x", "logs/../../x", "/etc/passwd", "."])
def test_paths_that_leave_the_tree_are_refused_before_anything_is_opened(tree, path):
    with pytest.raises(SafetyError, match="outside the environment's tree"):
        files.write_atomic(tree, path, "x")
    assert not files.inside(tree.base, path)


def test_modes_under_umask_000_are_never_world_writable(tree, umask_000):
    dir_mode, file_mode = files.profile_modes(type("P", (), {"dir_mode": 0o755})())
    assert file_mode == 0o644
    files.make_dirs(tree, "logs", mode=dir_mode)
    with files.open_append(tree, "logs/automation_development.log", mode=file_mode, dir_mode=dir_mode) as log:
        log.write("line\n")
    lock = files.open_lock(tree, "job", mode=0o600, dir_mode=0o700)
    lock.close()
    assert mode(tree.base / "logs") == 0o755
    assert mode(tree.base / "logs" / "automation_development.log") == 0o644
    assert mode(files.lock_file(tree, "job")) == 0o600 and mode(tree.base / "locks") == 0o700


def test_a_file_left_world_writable_is_tightened_when_opened(tree):
    log = tree.base / "app.log"
    log.write_text("old\n")
    os.chmod(log, 0o666)
    files.open_append(tree, "app.log", mode=0o600).close()
    assert mode(log) == 0o600 and log.read_text() == "old\n"


@pytest.mark.parametrize("opener", [files.open_append, files.ensure_file])
def test_a_fifo_or_a_directory_where_a_file_belongs_is_refused_without_hanging(tree, opener):
    os.mkfifo(tree.base / "fifo")
    (tree.base / "dir").mkdir()
    with pytest.raises(files.FileWriteError, match="fifo: not a regular file") as caught:
        opener(tree, "fifo")
    assert "fifo away" in caught.value.hint
    with pytest.raises(files.FileWriteError, match="dir"):
        opener(tree, "dir")


def test_open_lock_refuses_a_linked_lock_file(tree, tmp_path):
    (tree.base / "locks").mkdir()
    other = tmp_path / "production.lock"
    other.write_text("")
    files.lock_file(tree, "job").symlink_to(other)
    with pytest.raises(SafetyError, match="job.lock: it is a symlink"):
        files.open_lock(tree, "job")


def test_move_no_replace_moves_once_and_never_overwrites(tree):
    incoming = files.make_dirs(tree, "csv/incoming")
    processed = files.make_dirs(tree, "csv/processed")
    (incoming / "a.csv").write_text("new")
    (processed / "a.csv").write_text("old")
    with pytest.raises(files.FileWriteError, match="already there") as caught:
        files.move_no_replace(tree, incoming / "a.csv", "csv/processed")
    assert "never overwrites" in caught.value.hint
    assert (processed / "a.csv").read_text() == "old" and (incoming / "a.csv").read_text() == "new"
    (processed / "a.csv").unlink()
    assert files.move_no_replace(tree, incoming / "a.csv", processed) == processed / "a.csv"
    assert (processed / "a.csv").read_text() == "new" and not (incoming / "a.csv").exists()


def test_move_no_replace_works_without_renameat2(tree, monkeypatch):
    monkeypatch.setattr(files, "_renameat2", lambda *args: False)  # an older kernel or C library: link, then unlink
    incoming = files.make_dirs(tree, "csv/incoming")
    processed = files.make_dirs(tree, "csv/processed")
    (incoming / "a.csv").write_text("new")
    (processed / "b.csv").write_text("b")
    (incoming / "b.csv").write_text("other b")
    files.move_no_replace(tree, incoming / "a.csv", "csv/processed")
    with pytest.raises(files.FileWriteError, match="already there"):
        files.move_no_replace(tree, incoming / "b.csv", "csv/processed")
    assert (processed / "a.csv").read_text() == "new" and (processed / "b.csv").read_text() == "b"
    assert (incoming / "b.csv").read_text() == "other b"


def test_removing_a_directory_removes_links_not_what_they_point_to(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    folder = files.make_dirs(tree, "backups/config/old")
    (folder / "nested").mkdir()
    (folder / "nested" / ".env").write_text("A=1")
    (folder / "link").symlink_to(outside)
    assert files.remove(tree, folder, recursive=True)
    assert not folder.exists() and (outside / "keep").exists()
    assert not files.remove(tree, folder, recursive=True)


def test_move_aside_never_replaces_an_earlier_copy(tree):
    (tree.base / "history.sqlite3").write_text("one")
    first = files.move_aside(tree, "history.sqlite3", "corrupt")
    (tree.base / "history.sqlite3").write_text("two")
    second = files.move_aside(tree, "history.sqlite3", "corrupt")
    assert first != second and first.read_text() == "one" and second.read_text() == "two"


def test_check_file_tells_what_is_wrong_without_creating_anything(tree, tmp_path):
    assert files.check_file(tree, "history.sqlite3") is None
    (tree.base / "logs").symlink_to(tmp_path)
    assert files.check_file(tree, "logs/app.log") == "symlink"
    assert files.check_file(tree, "../x") == "outside"
    (tree.base / "h").mkdir()
    assert files.check_file(tree, "h") == "not a file"
    assert sorted(os.listdir(tree.base)) == ["h", "logs"]


def test_concurrent_atomic_writes_leave_one_whole_version(tree):
    from concurrent.futures import ThreadPoolExecutor

    versions = [f"version {i}\n" * 2000 for i in range(8)]
    with ThreadPoolExecutor(len(versions)) as pool:
        list(pool.map(lambda text: files.write_atomic(tree, "state.txt", text), versions))  # raises any failure
    assert (tree.base / "state.txt").read_text() in versions
    assert os.listdir(tree.base) == ["state.txt"]


def test_put_in_place_never_moves_onto_a_link_or_over_a_file(tmp_path):
    from envfence import files
    from envfence.errors import SafetyError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stage = files.make_stage(tmp_path / "var", ".development.restoring-")
    files.write_atomic(stage, "history.sqlite3", b"rows")
    (tmp_path / "var" / "development").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(SafetyError):
        files.put_in_place(tmp_path / "var", stage.name, "development")
    assert list(elsewhere.iterdir()) == [] and stage.is_dir()
    (tmp_path / "var" / "development").unlink()
    (tmp_path / "var" / "development" / "logs").mkdir(parents=True)
    (tmp_path / "var" / "development" / "logs" / "run.log").write_text("kept\n")
    with pytest.raises(files.FileWriteError):
        files.put_in_place(tmp_path / "var", stage.name, "development")
    assert (tmp_path / "var" / "development" / "logs" / "run.log").read_text() == "kept\n"
    (tmp_path / "var" / "development" / "logs" / "run.log").unlink()
    assert files.put_in_place(tmp_path / "var", stage.name, "development") == tmp_path / "var" / "development"
    assert (tmp_path / "var" / "development" / "history.sqlite3").read_bytes() == b"rows" and not stage.exists()


def test_a_scratch_tree_is_removed_with_what_it_holds_and_never_through_a_link(tmp_path):
    from envfence import files

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine\n")
    with files.scratch("envfence-test-") as scratch:
        files.write_atomic(scratch, "a/b.txt", "x")
        (scratch / "a" / "link").symlink_to(outside, target_is_directory=True)
        assert oct(scratch.stat().st_mode & 0o777) == oct(0o700)
    assert not scratch.exists()
    assert (outside / "keep.txt").read_text() == "mine\n"
