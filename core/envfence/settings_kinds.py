"""The kinds of value a settings table may hold, each with its JSON Schema and its check.

A :class:`Kind` is the one description of a value that both the loader and the
JSON Schema read: :meth:`Kind.problem` judges a value the way ``check`` and the
plugin's reader do, :attr:`Kind.schema` is the same rule for editors. Each kind
also carries a value it accepts and one it refuses (:attr:`Kind.good`,
:attr:`Kind.bad`), so a test can hold the two to agreeing on every declared key.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from . import slotted


@slotted.frozen
class Kind:
    """What a settings value must be."""

    label: str  #: in words, for messages and the docs ("a whole number of at least 1")
    schema: dict[str, Any]  #: the JSON Schema of the value
    accepts: Callable[[Any], bool] = slotted.field(repr=False)
    good: Any = None  #: a value it accepts (the docs' example, the agreement test's valid value)
    bad: Any = None  #: a value it refuses (the agreement test's invalid value)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not of this kind (the value shown only when it cannot be a secret), or None."""
        if self.accepts(value):
            return None
        return f"must be {self.label}, not {shown(value)}"

    def example(self) -> str:
        """The accepted example written as TOML."""
        return toml(self.good)


def shown(value: Any) -> str:
    """``value`` for a message: numbers, booleans and name-shaped words as written; other text by its length only."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # A word such as a profile name is shown; a URL, a path or a long run of letters may hold a secret.
        if re.fullmatch(r"[A-Za-z0-9_.-]{0,32}", value) and not re.search(r"[A-Za-z0-9]{17}", value):
            return repr(value)
        return f"a text of {len(value)} characters (not shown: it may be a secret)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def toml(value: Any) -> str:
    """``value`` written as a TOML value (for hints and the docs)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return json.dumps(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text(*, choices: Iterable[str] | None = None, pattern: str | None = None, example: str = "NAME",
         empty: bool = False) -> Kind:
    """A non-empty string (``empty``: any string); ``choices`` makes it one of those words, ``pattern`` a regular
    expression it must match whole."""
    if choices is not None:
        words = tuple(choices)
        return Kind(
            " or ".join(repr(w) for w in words) if len(words) <= 2 else "one of " + ", ".join(repr(w) for w in words),
            {"enum": list(words)},
            lambda v: isinstance(v, str) and v in words,
            good=words[0],
            bad="no-such-choice",
        )
    # minLength would take "  "; the loader wants a character that is not a space.
    schema: dict[str, Any] = {"type": "string"} if empty else {"type": "string", "pattern": r"\S"}
    compiled = re.compile(pattern) if pattern else None
    if pattern:
        schema["pattern"] = f"^(?:{pattern})$"  # the whole value, as re.fullmatch reads it
    return Kind(
        ("a string" if empty else "a non-empty string") if not pattern else "a string of the form " + example,
        schema,
        lambda v: isinstance(v, str) and (empty or bool(v.strip())) and (compiled is None or compiled.fullmatch(v) is not None),
        good=example,
        bad=5,
    )


def whole(*, minimum: int | None = None, maximum: int | None = None, example: int | None = None) -> Kind:
    """A whole number (not a boolean), within ``minimum`` and ``maximum`` when given."""
    schema: dict[str, Any] = {"type": "integer"}
    label = "a whole number"
    if minimum is not None:
        schema["minimum"] = minimum
        label += f" of at least {minimum}"
    if maximum is not None:
        schema["maximum"] = maximum
        label += f"{' and' if minimum is not None else ''} at most {maximum}"
    lo = minimum if minimum is not None else -(2**63)
    hi = maximum if maximum is not None else 2**63
    good = example if example is not None else max(lo, min(hi, 1))
    return Kind(label, schema, lambda v: _is_int(v) and lo <= v <= hi, good=good,
                bad=(minimum - 1) if minimum is not None else "many")


def number(*, minimum: float | None = None, exclusive: bool = False, example: float = 1.5) -> Kind:
    """A number (whole or not, never a boolean), above ``minimum`` when given."""
    schema: dict[str, Any] = {"type": "number"}
    label = "a number"
    if minimum is not None:
        schema["exclusiveMinimum" if exclusive else "minimum"] = minimum
        label += f" {'above' if exclusive else 'of at least'} {minimum:g}"

    def accepts(v: Any) -> bool:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        return minimum is None or (v > minimum if exclusive else v >= minimum)

    return Kind(label, schema, accepts, good=example, bad="many")


def duration(*, example: str = "15m") -> Kind:
    """An age (``15m``, ``2h``, ``30 days``) or a positive number of seconds; :func:`duration_problem` reads the age."""
    return either(text(example=example), number(minimum=0, exclusive=True, example=60))


def duration_problem(value: Any) -> str | None:
    """Why a :func:`duration` value is no age, or None (the ``check`` of a duration key)."""
    if not isinstance(value, str):
        return None
    import click

    from .cli.params import Age

    try:
        Age().convert(value, None, None)
    except click.BadParameter:
        return 'is not a duration (an age such as "15m", "2h", "1d", or seconds)'
    return None


def flag() -> Kind:
    """true or false."""
    return Kind("true or false", {"type": "boolean"}, lambda v: isinstance(v, bool), good=True, bad="yes")


def texts(*, choices: Iterable[str] | None = None, example: str = "NAME") -> Kind:
    """A list of non-empty strings (each one of ``choices`` when given)."""
    words = tuple(choices) if choices is not None else None
    item: dict[str, Any] = {"enum": list(words)} if words else {"type": "string", "minLength": 1}

    def accepts(v: Any) -> bool:
        return isinstance(v, list) and all(
            isinstance(s, str) and s.strip() and (words is None or s in words) for s in v
        )

    label = "a list of " + ("words among " + ", ".join(words) if words else "strings")
    return Kind(label, {"type": "array", "items": item}, accepts, good=[words[0] if words else example], bad="x")


def mapping(values: Kind | None = None, *, example: dict[str, Any] | None = None) -> Kind:
    """A table of free names, each value of kind ``values`` (any value when None)."""
    schema: dict[str, Any] = {"type": "object"}
    if values is not None:
        schema["additionalProperties"] = values.schema

    def accepts(v: Any) -> bool:
        return isinstance(v, dict) and (values is None or all(values.accepts(x) for x in v.values()))

    label = "a table" + (f" whose values are {values.label}" if values is not None else "")
    good = example if example is not None else ({"NAME": values.good} if values is not None else {})
    return Kind(label, schema, accepts, good=good, bad=5)


def either(*kinds: Kind) -> Kind:
    """A value of any one of ``kinds``."""
    return Kind(
        " or ".join(k.label for k in kinds),
        {"anyOf": [k.schema for k in kinds]},
        lambda v: any(k.accepts(v) for k in kinds),
        good=kinds[0].good,
        bad=kinds[0].bad if all(not k.accepts(kinds[0].bad) for k in kinds) else None,
    )
