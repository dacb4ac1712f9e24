"""One migration applied to one environment's files, in memory: the operations a migration calls.

``step.rename("HCP_TOKEN", "HCP_API_KEY")`` renames ``HCP_TOKEN`` and the
environment's prefixed ``PROD_HCP_TOKEN`` wherever the environment's files
bind them; the values, their quoting and the lines around them stay as
written. An operation that would lose a value (a rename onto a key already
set, a split into a key already set) raises :class:`MigrationError` naming
the file and line, and the whole step is abandoned.
"""

from __future__ import annotations

from typing import Any

from .migration_files import Change, Document, MigrationError, SettingsDocument, binding


class Step:
    """One environment's ``.env`` files (``{source: Document}``, lowest precedence first) and the changes made."""

    def __init__(self, environment: str, naming: Any, docs: dict[str, Document], where: str,
                 settings: SettingsDocument | None = None) -> None:
        self.environment, self.naming, self.docs, self.where = environment, naming, docs, where
        self.settings = settings
        self.changes: list[Change] = []

    # --- reading ------------------------------------------------------------------------

    def forms(self, key: str) -> list[str]:
        """The names ``key`` has in this environment: plain and prefixed; none when it is another environment's."""
        owner, plain = self.naming.split(key)
        if owner is None:
            prefixed = self.naming.key(self.environment, key)
            return [key] if prefixed == key else [key, prefixed]
        return [key] if owner == self.environment else []

    def _target(self, name: str, key: str, to: str) -> str:
        """``to`` in the form ``name`` has (``PROD_`` + ``to`` for a prefixed one)."""
        return to if name == key else self.naming.key(self.environment, self.naming.split(to)[1])

    def bound(self, key: str, files: list[str] | None = None) -> list[tuple[Document, str]]:
        """``(document, name)`` for each file of ``files`` (all by default) binding a form of ``key``."""
        return [(doc, name) for source, doc in self.docs.items() if files is None or source in files
                for name in self.forms(key) if name in doc.keys()]

    def get(self, key: str) -> str | None:
        """``key``'s value in this environment's files: the highest layer's, the prefixed form first."""
        for doc in reversed(list(self.docs.values())):
            for name in reversed(self.forms(key)):
                if name in doc.keys():
                    return doc.value(name)
        return None

    def file(self, name: str) -> Document:
        """The environment's file ``name`` (``{environment}`` is replaced by its name)."""
        source = name.replace("{environment}", self.environment)
        if source not in self.docs:
            raise self.error(f"{name!r} is no configuration file of {self.environment}", f"use one of {', '.join(self.docs)}")
        return self.docs[source]

    def _files(self, file: str | None) -> list[str] | None:
        return None if file is None else [self.file(file).name]

    def error(self, problem: str, hint: str) -> MigrationError:
        """A failure of this step, naming the migration (its file and line) and the environment."""
        return MigrationError(f"{self.where}: {problem} (in {self.environment})", hint)

    def _free(self, name: str, why: str) -> None:
        for doc in self.docs.values():
            if name in doc.keys():
                raise self.error(f"{why}: {name} is already set in {doc.name}:{doc.line_of(name)}",
                                 "drop one of the two first (a `drop` before this operation), or choose another name")

    # --- the operations -----------------------------------------------------------------

    def rename(self, key: str, to: str, file: str | None = None) -> None:
        """Rename ``key`` (each form, in ``file`` or every file) to ``to``; refused onto a key already set."""
        for doc, name in self.bound(key, self._files(file)):
            target = self._target(name, key, to)
            self._free(target, f"rename {name} to {target}")
            value = doc.value(name)
            doc.rename(name, target)
            self.changes.append(Change(doc.name, "renamed", name, target, value, value))

    def split(self, key: str, into: list[str], separator: str = ",", file: str | None = None) -> None:
        """Split ``key``'s value on ``separator`` into the keys ``into``, in place; ``key`` goes."""
        if not isinstance(into, list) or not into or not all(isinstance(k, str) for k in into):
            raise self.error(f"split {key}: `into` is a list of key names", 'into = ["HOST", "PORT"]')
        for doc, name in self.bound(key, self._files(file)):
            value = doc.value(name) or ""
            parts = value.split(separator, len(into) - 1)
            if len(parts) != len(into):
                raise self.error(f"split {name} in {doc.name}:{doc.line_of(name)}: its value has {len(parts)} part(s) "
                                 f"separated by {separator!r}, not {len(into)}", "fix the value, or the migration's `into`")
            targets = [self._target(name, key, k) for k in into]
            for target in targets:
                self._free(target, f"split {name} into {target}")
            doc.replace(name, [(t, binding(t, part)) for t, part in zip(targets, parts)])
            self.changes.append(Change(doc.name, "removed", name, old=value))
            self.changes += [Change(doc.name, "added", t, new=part) for t, part in zip(targets, parts)]

    def move(self, key: str, from_: str, to: str) -> None:
        """Move ``key``'s binding(s) from file ``from_`` to file ``to``, as written."""
        source, target = self.file(from_), self.file(to)
        for doc, name in self.bound(key, [source.name]):
            if name in target.keys():
                raise self.error(f"move {name} to {target.name}: it is already set in {target.name}:{target.line_of(name)}",
                                 "drop one of the two first, or move it elsewhere")
            value = doc.value(name)
            target.add(name, doc.take(name))
            self.changes.append(Change(source.name, "moved", name, target.name, value, value))

    def set_default(self, key: str, value: Any, file: str = ".env") -> None:
        """Set ``key`` in ``file`` when none of the environment's files sets it."""
        if self.get(key) is None:
            self.set(key, value, file)

    def set(self, key: str, value: Any, file: str = ".env") -> None:
        """Set ``key`` to ``value`` in ``file`` (replacing its binding there, or adding one)."""
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "${" in text:
            raise self.error(f"the value of {key} holds '${{', which a .env reader expands", "write it without '${'")
        doc = self.file(file)
        old = doc.value(key)
        if old == text:
            return
        if old is None:
            doc.add(key, binding(key, text))
        else:
            doc.replace(key, [(key, binding(key, text))])
        self.changes.append(Change(doc.name, "added" if old is None else "changed", key, old=old, new=text))

    def drop(self, key: str, file: str | None = None) -> None:
        """Remove ``key`` (each form) from ``file``, or from every file of the environment."""
        for doc, name in self.bound(key, self._files(file)):
            value = doc.value(name)
            doc.take(name)
            self.changes.append(Change(doc.name, "removed", name, old=value))

    # --- the project's settings (one file for every environment: the first step changes it, the others find it done)

    def _settings(self, setting: str) -> SettingsDocument:
        if self.settings is None:
            raise self.error(f"{setting}: the project has no settings file to change", "create envfence.toml (envfence init)")
        if not isinstance(setting, str) or not all(setting.split(".")):
            raise self.error(f"{setting!r} is not a setting's dotted path", 'write setting = "health.max_lock_age"')
        return self.settings

    def set_setting(self, setting: str, value: Any) -> None:
        """Set ``setting`` (a dotted path: ``health.max_lock_age``) in the settings file."""
        doc = self._settings(setting)
        old = doc.get(setting)
        if old == value:
            return
        doc.set(setting, value)
        self.changes.append(Change(doc.name, "added" if old is None else "changed", setting, old=_text(old), new=_text(value)))

    def rename_setting(self, setting: str, to: str) -> None:
        """Move ``setting``'s value to the dotted path ``to``; refused when ``to`` is set already."""
        doc = self._settings(setting)
        self._settings(to)
        value = doc.get(setting)
        if value is None:
            return
        if doc.get(to) is not None:
            raise self.error(f"rename setting {setting} to {to}: {to} is already set in {doc.name}",
                             "drop one of the two first (a `drop_setting`), or choose another name")
        doc.remove(setting)
        doc.set(to, value)
        self.changes.append(Change(doc.name, "renamed", setting, to, _text(value), _text(value)))

    def drop_setting(self, setting: str) -> None:
        """Remove ``setting`` from the settings file."""
        doc = self._settings(setting)
        value = doc.get(setting)
        if value is not None:
            doc.remove(setting)
            self.changes.append(Change(doc.name, "removed", setting, old=_text(value)))


def _text(value: Any) -> str | None:
    import json

    return None if value is None else value if isinstance(value, str) else json.dumps(value)
