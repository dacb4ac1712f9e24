"""Credential naming: which environment a key belongs to, and how to build one.

A credential is stored once per environment under its environment's prefix
(``DEV_AIRTABLE_API_KEY``, ``PROD_AIRTABLE_API_KEY``) or once for all under
its plain name (``AIRTABLE_API_KEY``). :class:`CredentialNaming` is the only
place that knows how a key splits into an environment and a plain name; the
merge, the checks, the config views and a command automation's environment
all ask it.

Nested prefixes: when one declared prefix begins another's (``QA`` and
``QA_EU``), the longest declared prefix that the key starts with wins.
``QA_EU_API_KEY`` belongs to the ``QA_EU`` environment as ``API_KEY``, never to
``QA`` as ``EU_API_KEY``; ``QA_API_KEY`` belongs to ``QA``. So the ``QA``
environment cannot hold a plain name that starts with ``EU_`` under its
prefix: that key is read as ``QA_EU``'s.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import slotted


#: At most this many split keys are kept by one naming (then it starts afresh).
_SPLITS_KEPT = 200_000


@slotted.frozen
class CredentialNaming:
    """The declared prefixes, and the one rule that reads and builds prefixed keys.

    :param prefixes: environment name -> its prefix, without the underscore.
    """

    prefixes: Mapping[str, str]
    #: prefix -> environment, for :meth:`split`.
    _environments: dict[str, str] = slotted.field(init=False, repr=False)
    #: Keys already split: every check of a session splits every key, some several times.
    _splits: dict[str, tuple[str | None, str]] = slotted.field(init=False, repr=False, eq=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_environments", {p: env for env, p in self.prefixes.items() if p})
        object.__setattr__(self, "_splits", {})

    @classmethod
    def from_settings(cls, settings: Any) -> "CredentialNaming":
        """The naming of a project's declared environments (:class:`~envfence.settings.ProjectSettings`)."""
        return cls({name: spec.prefix for name, spec in settings.environments.items()})

    def split(self, key: str) -> tuple[str | None, str]:
        """``(environment, plain name)`` of ``key``; the environment is None for a plain key.

        The longest declared prefix the key starts with decides. Only the
        key's underscores can end a prefix, so each is looked up, the last
        first: the cost is the key's, whatever the number of environments.
        """
        found = self._splits.get(key)
        if found is None:
            found = self._split(key)
            if len(self._splits) >= _SPLITS_KEPT:
                self._splits.clear()
            self._splits[key] = found
        return found

    def _split(self, key: str) -> tuple[str | None, str]:
        end = key.rfind("_")
        while end > 0:
            env = self._environments.get(key[:end])
            if env is not None and end + 1 < len(key):
                return env, key[end + 1 :]
            end = key.rfind("_", 0, end)
        return None, key

    def environment_of(self, key: str) -> str | None:
        """The environment whose prefix ``key`` carries, or None."""
        return self.split(key)[0]

    def key(self, environment: str, name: str) -> str:
        """The key of credential ``name`` in ``environment`` (``DEV_`` + ``AIRTABLE_API_KEY``)."""
        prefix = self.prefixes.get(environment, "")
        return f"{prefix}_{name}" if prefix else name

    def prefix(self, environment: str) -> str:
        """``environment``'s prefix, without the underscore."""
        return self.prefixes.get(environment, "")

    def readable_in(self, key: str, environment: str) -> bool:
        """True when ``environment`` may read ``key``: a plain key, or one with its own prefix."""
        return self.environment_of(key) in (None, environment)

    def view(self, values: Mapping[str, Any], environment: str) -> dict[str, Any]:
        """``environment``'s values under their plain names.

        Keys with its prefix are stripped of it and win over plain keys; keys
        with another environment's prefix are left out.
        """
        view: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key, value in values.items():
            env, plain = self.split(key)
            if env is None:
                view[key] = value
            elif env == environment:
                own[plain] = value
        view.update(own)
        return view
