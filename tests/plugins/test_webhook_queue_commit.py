"""The SQLite queue's group commit: deliveries arriving together share a sync, each caller hears its own answer."""

from __future__ import annotations

import json
import threading

import pytest

from envfence.errors import EnvfenceError


@pytest.fixture
def queue(make_project):
    from envfence import open_session
    from envfence_builtins.webhook_service.webhook_queue import WebhookQueue

    session = open_session(root=make_project(), env="development")
    session.prepare()
    opened = WebhookQueue(session.paths)
    yield opened
    opened.close()


def _accept_all(queue, ids: list[str]) -> dict[str, object]:
    """Accept one delivery per id, all at once from as many threads; each id's answer (True, False or the exception)."""
    answers: dict[str, object] = {}
    start = threading.Barrier(len(ids))

    def deliver(event_id: str) -> None:
        start.wait()
        try:
            answers[event_id] = queue.accept(route="/hcp", event_id=event_id, provider="housecallpro", event_type="job.created",
                                             automation="sync", body=json.dumps({"id": event_id}).encode(), headers={},
                                             max_attempts=3)
        except EnvfenceError as exc:
            answers[event_id] = exc

    threads = [threading.Thread(target=deliver, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_deliveries_arriving_together_are_all_stored_once(queue):
    ids = [f"evt_{n}" for n in range(24)]
    assert _accept_all(queue, ids) == {i: True for i in ids}
    assert queue.counts()["pending"] == 24
    assert _accept_all(queue, ids) == {i: False for i in ids}  # replays, however they are batched
    assert queue.counts()["pending"] == 24
    assert sorted(e.id for e in queue.list(limit=100)) == sorted(ids)


def test_every_delivery_waiting_on_a_failed_commit_hears_why_and_none_is_kept(queue):
    moved = queue.path.with_name("moved-away.sqlite3")
    queue.path.rename(moved)  # SQLite would keep writing into the file it opened, now at no place anyone looks
    answers = _accept_all(queue, [f"evt_{n}" for n in range(12)])
    assert all(isinstance(a, EnvfenceError) and "replaced or removed" in a.message for a in answers.values()), answers
    moved.rename(queue.path)  # back in place: the file holds none of them, and takes deliveries again
    assert sum(queue.counts().values()) == 0
    assert _accept_all(queue, ["evt_0", "evt_1"]) == {"evt_0": True, "evt_1": True}
