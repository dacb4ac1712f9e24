"""The fake Airtable's formula language: a parser to an AST, then evaluation.

It covers the language pyairtable's ``formulas`` module writes (``match()``,
``EQ``/``NE``/``GT``/``GTE``/``LT``/``LTE``, ``AND``/``OR``/``NOT``,
``to_formula_str``: ``{Field}`` references, strings in
single quotes with ``\\'`` and ``\\\\`` escaped by ``quoted()``, ``TRUE()``,
``FALSE()``, ``DATETIME_PARSE('2023-12-01T12:34:56.000Z')``) and what people
write by hand in ``filterByFormula``: double-quoted strings, arithmetic,
``&``, ``IF``, ``FIND``, ``SEARCH``, ``LEN``, ``LOWER``, ``UPPER``, ``TRIM``,
``RECORD_ID``, ``IS_BEFORE``, ``IS_AFTER`` and ``BLANK``.

Semantics follow Airtable's formula field reference
(https://support.airtable.com/docs/formula-field-reference):

- ``TRUE()`` is 1 and ``FALSE()`` is 0; ``BLANK()`` is the empty value.
- An empty value equals ``0``, ``""`` and ``FALSE()``, and counts as 0 in
  arithmetic and as "" in ``&``; text ``=`` is case-sensitive.
- ``FIND`` gives the 1-based position, 0 when not found; ``SEARCH`` the
  same, but empty when not found.
- ``DATETIME_PARSE`` reads ISO 8601 text (and a few moment.js input
  formats); date fields are dates, compared in time.
- A formula that errors for a record (a division by zero, a date that does
  not parse) leaves that record out, as ``#ERROR!`` is not true.

Errors use Airtable's 422 ``INVALID_FILTER_BY_FORMULA`` shape: ``Unknown field
names: x`` (lower-cased, as Airtable writes it) for an unknown field, ``Invalid
formula. Please check your formula text.`` for bad syntax, and a message naming
the function for a function this fake does not evaluate.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Callable, Mapping

from envfence.testing import HTTPError

#: The functions evaluated here: name -> (fewest, most) arguments; ``None``: no most.
#: Airtable documents no cap on AND()/OR() ("you can list any number of criteria",
#: <https://support.airtable.com/docs/evaluate-arguments-using-and-and-or>), and
#: pyairtable's ORM sends ORs of 499 terms; only the nesting depth below is bounded.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "AND": (1, None),
    "OR": (1, None),
    "NOT": (1, 1),
    "IF": (2, 3),
    "FIND": (2, 3),
    "SEARCH": (2, 3),
    "LEN": (1, 1),
    "LOWER": (1, 1),
    "UPPER": (1, 1),
    "TRIM": (1, 1),
    "RECORD_ID": (0, 0),
    "DATETIME_PARSE": (1, 3),
    "IS_BEFORE": (2, 2),
    "IS_AFTER": (2, 2),
    "BLANK": (0, 0),
    "TRUE": (0, 0),
    "FALSE": (0, 0),
}

_INVALID = "The formula for filtering records is invalid: "


class _Error:
    """Airtable's ``#ERROR!``: the value of a formula that failed for one record."""

    def __repr__(self) -> str:
        return "#ERROR!"


ERROR = _Error()


def formula_error(message: str) -> HTTPError:
    """Airtable's 422 for a formula it refuses."""
    return HTTPError(422, {"error": {"type": "INVALID_FILTER_BY_FORMULA", "message": _INVALID + message}})


def _syntax() -> HTTPError:
    return formula_error("Invalid formula. Please check your formula text.")


# --- parsing ------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<field>\{[^}]*\})
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<op>!=|>=|<=|=|<|>|&|\+|-|\*|/|\(|\)|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X | re.S,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unescape(text: str) -> str:
    # quoted() escapes a backslash as \\ and a quote as \'; \n and \t are
    # Airtable's own escapes in string literals.
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text, flags=re.S)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _syntax()
        pos = match.end()
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "field":
            # No escape inside braces: pyairtable writes \} for a "}" in a
            # field name, and Airtable fails such a formula (field_name()'s note).
            out.append(("field", raw[1:-1]))
        elif kind == "string":
            out.append(("lit", _unescape(raw[1:-1])))
        elif kind == "number":
            value = float(raw)
            out.append(("lit", int(value) if value.is_integer() and not re.search(r"[.eE]", raw) else value))
        else:
            out.append((kind, raw))
    out.append(("end", None))
    return out


class _Parser:
    """Recursive descent, lowest precedence first: comparison, ``&``, ``+ -``, ``* /``, unary ``-``."""

    def __init__(self, text: str, fields: set[str]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.fields = fields
        self.unknown: list[str] = []

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos]

    def take(self, kind: str, value: Any = None) -> Any:
        token = self.tokens[self.pos]
        if token[0] != kind or (value is not None and token[1] != value):
            raise _syntax()
        self.pos += 1
        return token[1]

    def parse(self) -> tuple:
        node = self.comparison()
        self.take("end")
        if self.unknown:
            raise formula_error("Unknown field names: " + ", ".join(n.lower() for n in self.unknown))
        return node

    def _binary(self, operators: tuple[str, ...], lower: Callable[[], tuple]) -> tuple:
        node = lower()
        while self.peek()[0] == "op" and self.peek()[1] in operators:
            op = self.take("op")
            node = ("bin", op, node, lower())
        return node

    def comparison(self) -> tuple:
        return self._binary(("=", "!=", "<", ">", "<=", ">="), self.concat)

    def concat(self) -> tuple:
        return self._binary(("&",), self.additive)

    def additive(self) -> tuple:
        return self._binary(("+", "-"), self.term)

    def term(self) -> tuple:
        return self._binary(("*", "/"), self.unary)

    def unary(self) -> tuple:
        if self.peek() == ("op", "-"):
            self.take("op")
            return ("neg", self.unary())
        return self.atom()

    def atom(self) -> tuple:
        kind, value = self.peek()
        if kind == "lit":
            self.pos += 1
            return ("lit", value)
        if kind == "field":
            self.pos += 1
            return self._field(value)
        if kind == "op" and value == "(":
            self.take("op")
            node = self.comparison()
            self.take("op", ")")
            return node
        if kind == "name":
            self.pos += 1
            if self.peek() == ("op", "("):
                return self._call(value)
            return self._field(value)  # a one-word field name may go without braces
        raise _syntax()

    def _field(self, name: str) -> tuple:
        # Airtable reads field names only here, never field ids.
        if name not in self.fields and name not in self.unknown:
            self.unknown.append(name)
        return ("field", name)

    def _call(self, name: str) -> tuple:
        self.take("op", "(")
        args: list[tuple] = []
        if self.peek() != ("op", ")"):
            args.append(self.comparison())
            while self.peek() == ("op", ","):
                self.take("op")
                args.append(self.comparison())
        self.take("op", ")")
        upper = name.upper()
        if upper not in FUNCTIONS:
            raise formula_error(
                f"the fake Airtable does not evaluate {name}(); it evaluates " + ", ".join(f"{f}()" for f in FUNCTIONS)
            )
        fewest, most = FUNCTIONS[upper]
        if len(args) < fewest or most is not None and len(args) > most:
            raise _syntax()
        return ("call", upper, args)


#: The deepest formula the fake evaluates (operators chained, minus signs, calls within calls):
#: evaluation recurses once per level, and a formula must never crash the server.
MAX_NESTING = 256


def parse(text: str, fields: set[str]) -> tuple:
    """Parse ``text`` to an AST, checking field and function names; raises a 422 :class:`HTTPError`."""
    try:
        node = _Parser(text, fields).parse()
    except RecursionError:
        raise _syntax() from None
    if _depth(node) > MAX_NESTING:
        raise formula_error(f"the formula nests deeper than {MAX_NESTING} levels; the fake Airtable evaluates at most that")
    return node


def _depth(node: tuple) -> int:
    """How deep ``node`` nests, without recursing (a left-deep chain of 5,000 ``&`` is 5,000 deep)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        kind = current[0]
        if kind == "neg":
            stack.append((current[1], depth + 1))
        elif kind == "bin":
            stack += [(current[2], depth + 1), (current[3], depth + 1)]
        elif kind == "call":
            stack += [(arg, depth + 1) for arg in current[2]]
    return deepest


# --- evaluation ---------------------------------------------------------------------


def truthy(value: Any) -> bool:
    """Airtable's truth for ``filterByFormula``.

    "List records": a record is included "if the result is not 0, false, "",
    NaN, [], or #Error!".
    """
    if value is None or value is ERROR:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def iso_milliseconds(moment: _dt.datetime) -> str:
    """A moment as Airtable writes a dateTime: UTC, to the millisecond (finer digits cut), ``Z``."""
    moment = moment.astimezone(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(text: Any, fmt: str | None = None) -> _dt.datetime | None:
    """An aware datetime from ISO 8601 text (UTC when no offset), or None."""
    if isinstance(text, _dt.datetime):
        return text
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    try:
        if fmt:
            parsed = _dt.datetime.strptime(text, _moment_to_strptime(fmt))
        else:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


_MOMENT = [("YYYY", "%Y"), ("MM", "%m"), ("DD", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"), ("M", "%m"), ("D", "%d")]


def _moment_to_strptime(fmt: str) -> str:
    # DATETIME_PARSE's input format uses moment.js tokens; the common ones.
    out, i = "", 0
    while i < len(fmt):
        for token, directive in _MOMENT:
            if fmt.startswith(token, i):
                out += directive
                i += len(token)
                break
        else:
            out += fmt[i].replace("%", "%%")
            i += 1
    return out


def _number(value: Any) -> float | int | _Error:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else 0
        except ValueError:
            return ERROR
    return ERROR


def text(value: Any) -> str:
    """A value as ``&`` and the text functions see it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, _dt.datetime):
        return iso_milliseconds(value)
    return str(value)


def _is_blank(value: Any) -> bool:
    return value is None or value == ""


def _equal(a: Any, b: Any) -> bool:
    if _is_blank(a) or _is_blank(b):
        # An empty cell equals 0, "" and FALSE() in Airtable.
        other = b if _is_blank(a) else a
        return _is_blank(other) or (isinstance(other, (int, float)) and other == 0)
    if isinstance(a, _dt.datetime) or isinstance(b, _dt.datetime):
        da, db = parse_datetime(a), parse_datetime(b)
        return da is not None and db is not None and da == db
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    na, nb = _number(a), _number(b)
    return na is not ERROR and nb is not ERROR and na == nb


def _order(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Two values made comparable with < and >, or None when they are not."""
    if isinstance(a, _dt.datetime) or isinstance(b, _dt.datetime):
        da, db = parse_datetime(a), parse_datetime(b)
        return None if da is None or db is None else (da, db)
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    na, nb = _number(a), _number(b)
    return None if na is ERROR or nb is ERROR else (na, nb)


def _compare(op: str, a: Any, b: Any) -> Any:
    if op in ("=", "!="):
        equal = _equal(a, b)
        return equal if op == "=" else not equal
    pair = _order(a, b)
    if pair is None:
        return False
    x, y = pair
    return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+" and (isinstance(a, str) or isinstance(b, str)) and (_number(a) is ERROR or _number(b) is ERROR):
        return text(a) + text(b)
    x, y = _number(a), _number(b)
    if x is ERROR or y is ERROR:
        return ERROR
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if y == 0:
        return ERROR  # Airtable shows #ERROR! for a division by zero
    return x / y


class Evaluator:
    """Evaluates a parsed formula for one record.

    :param values: field name -> the value formulas see (see
        ``Records._formula_values`` of airtable_records).
    :param record_id: what ``RECORD_ID()`` gives.
    """

    def __init__(self, values: Mapping[str, Any], record_id: str) -> None:
        self.values = values
        self.record_id = record_id

    def __call__(self, node: tuple) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "field":
            return self.values.get(node[1])
        if kind == "neg":
            value = _number(self(node[1]))
            return ERROR if value is ERROR else -value
        if kind == "bin":
            _, op, left, right = node
            a, b = self(left), self(right)
            if a is ERROR or b is ERROR:
                return ERROR
            if op == "&":
                return text(a) + text(b)
            if op in ("+", "-", "*", "/"):
                return _arith(op, a, b)
            return _compare(op, a, b)
        return self._call(node[1], node[2])

    def _call(self, name: str, args: list[tuple]) -> Any:
        if name == "IF":  # only the branch taken is evaluated
            condition = self(args[0])
            if condition is ERROR:
                return ERROR
            if truthy(condition):
                return self(args[1])
            return self(args[2]) if len(args) == 3 else None
        if name == "BLANK":
            return None
        if name in ("TRUE", "FALSE"):
            return name == "TRUE"
        if name == "RECORD_ID":
            return self.record_id
        values = [self(a) for a in args]
        if any(v is ERROR for v in values):
            return ERROR
        if name == "AND":
            return all(truthy(v) for v in values)
        if name == "OR":
            return any(truthy(v) for v in values)
        if name == "NOT":
            return not truthy(values[0])
        if name in ("FIND", "SEARCH"):
            needle, haystack = text(values[0]), text(values[1])
            start = _number(values[2]) if len(values) == 3 else 0
            if start is ERROR:
                return ERROR
            found = haystack.find(needle, max(int(start) - 1, 0)) + 1
            return found if found or name == "FIND" else None
        if name == "LEN":
            return len(text(values[0]))
        if name == "LOWER":
            return text(values[0]).lower()
        if name == "UPPER":
            return text(values[0]).upper()
        if name == "TRIM":
            return text(values[0]).strip()
        if name == "DATETIME_PARSE":
            fmt = text(values[1]) if len(values) > 1 else None
            parsed = parse_datetime(text(values[0]), fmt)
            return ERROR if parsed is None else parsed
        # IS_BEFORE, IS_AFTER
        first, second = parse_datetime(values[0]), parse_datetime(values[1])
        if first is None or second is None:
            return ERROR
        return first < second if name == "IS_BEFORE" else first > second


def matches(node: tuple, values: Mapping[str, Any], record_id: str) -> bool:
    """True when the formula is true for this record (an error is not)."""
    try:
        return truthy(Evaluator(values, record_id)(node))
    except (ArithmeticError, ValueError):  # an overflow, say: #ERROR! for this record
        return False
