"""The ``[store]`` table and how the project's settings select the shared store.

Kept apart from the client (:mod:`envfence_builtins.store.postgres_client`):
every session asks the store plugin which settings it declares and whether
to chain an audit event, and a project without ``[store]`` answers that from
this module alone, without the client, the audit chain or ``hashlib``.
"""

from __future__ import annotations

from typing import Any

SECTION = "store"
FALLBACKS = ("refuse", "local")


def _store_table():
    from envfence.settings_kinds import either, number, text, texts
    from envfence.settings_tables import Table

    table = Table(SECTION, "the shared PostgreSQL store of run history, locks and the audit trail")
    table.add("url", text(example="postgresql://envfence@db.internal/envfence"), None,
              "the database (a password belongs in the STORE_PASSWORD credential, not here)")
    table.add("fallback", text(choices=FALLBACKS), "refuse", "refuse: no run without the shared store; local: run on local state")
    table.add("connect_timeout", number(minimum=0, exclusive=True, example=5), 5, "seconds to wait for the database")
    roles = table.add_table("roles", "one PostgreSQL role per environment, so a role writes its environment only",
                            extra=True)
    roles.add_free(either(text(example="envfence_prod"), texts(example="envfence_prod")), "the role (or roles) of that environment")
    table.add("readers", either(texts(example="envfence_reader"), text(example="envfence_reader")), [],
              "roles that only read every environment")
    return table


#: ``[store]``, declared once for loading, ``check``, the schema and the docs.
TABLE = _store_table()


def settings_of(settings) -> dict[str, Any] | None:
    """The ``[store]`` table (its kinds checked), or None when the project does not use a shared store.

    :raises ConfigurationError: a value of the wrong kind, naming the key.
    """
    values = TABLE.read(settings)
    if not values:
        return None
    return {key: values[key] for key in ("url", "fallback", "connect_timeout", "readers")} | {"roles": values.raw.get("roles", {})}
