"""``envfence get``, ``export`` and ``set``: one value, all of them, or a new one.

- ``get KEY`` prints this environment's value of KEY under its plain name (a
  credential through the environment's prefix). A secret needs ``--reveal``,
  which is audited; a secret inside the value is masked without it.
- ``export --format shell|dotenv|json`` prints the whole environment view,
  as ``eval "$(envfence export)"`` wants it. Secrets are left out, and
  secrets inside other values (a password in ``DATABASE_URL``) masked as
  ``config show`` masks them, unless ``--reveal`` (audited).
- ``set KEY [VALUE]`` (the value from stdin or a hidden prompt when absent)
  writes the file that belongs to this environment: ``.env.<environment>``,
  sealed there for a secret when the environment has a key pair (no private
  key needed), encrypted when it has a key, else
  ``.env.<environment>.local`` for a secret, which is never committed. The
  value is never echoed.

The plugin offers one hook, ``encrypt_value``: the plugin that holds the
environment's key (``encryption``) encrypts what ``set`` writes. With
``-p no:encryption`` nothing answers, and a secret goes to the ``.local``
file, as on a machine without the key. The commands are in
:mod:`.values_cli_commands`, the hook in :mod:`.values_cli_hooks`.
"""

from __future__ import annotations

from envfence import hookimpl


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``encrypt_value``: the plugin holding the environment's key encrypts what ``set`` writes."""
    from .values_cli_hooks import ValuesHookspecs

    register(ValuesHookspecs)


@hookimpl
def register_commands(cli) -> None:
    """``envfence get``, ``envfence export`` and ``envfence set``."""
    from .values_cli_commands import export, get, set_

    for command in (get, export, set_):
        cli.add_command(command)
