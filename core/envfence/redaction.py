"""Removing secret values from text before anyone sees it: the one redaction engine.

Every boundary where text leaves envfence passes through a :class:`Redactor`:
envfence's own output and JSON, error messages and tracebacks, log records
(:func:`record_patcher`), audit, history and status records, snapshot notes,
and a run's streams (:class:`LineStream` for a command's output,
:func:`redirected_output` for a function automation's ``print``).

What is masked (``********``), for every secret value of the session:

- the value as it is, and the forms Python and the web give it: ``repr()`` and
  ``str()`` escapes (backslashes, quotes, ``\\n``, also escaped twice, as a
  traceback shows an exception holding a ``repr``), JSON string escaping and
  URL-encoding (``%XX`` and ``+`` for spaces);
- a value of several lines as a whole, and each of its lines on its own
  (:class:`LineStream` also catches it printed line by line);
- anything matching a secret shape plugins contribute through the
  ``secret_shapes`` hook (an Airtable token, a ``whsec_`` secret), known to
  the session or not, and a bearer token in an ``Authorization`` header.

The rules (docs/secrets.md says them for users):

- A secret made only of letters, or only of digits (an ordinary word or
  number), is masked where it stands as a whole token, never inside a longer
  word: masking ``short`` in "shorter" would print "********er" and tell the
  reader the secret. Letters, digits and ``_`` make up words; an escape such
  as ``\\n`` just before the value counts as a boundary.
- Any other secret is masked wherever it occurs, even glued to other text.
- Values shorter than :data:`MIN_MASKED_LENGTH` are never masked by value:
  masking every ``1`` or ``no`` would wreck every message and point at the
  secret. ``envfence check`` reports any secret under
  :data:`MIN_SECRET_LENGTH` characters (``SECRET_TOO_SHORT``).

Cost: the values and their forms go into one Aho-Corasick automaton
(pyahocorasick), built the first time the redactor sees text, so a session
that masks nothing never builds it. Redacting a
text then costs one pass over it, whatever the number of secrets; building
costs one pass over the secrets' forms. ``benchmarks/redaction.py`` compares
it with one compiled regular expression of all the forms, which is slower
from a few hundred secrets on and needs seconds to compile at 10,000.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from . import slotted
from .models import MASK

#: Values shorter than this are never masked by value (see the module's rules).
MIN_MASKED_LENGTH = 4
#: Secrets shorter than this are a ``SECRET_TOO_SHORT`` finding.
MIN_SECRET_LENGTH = 8


@slotted.frozen
class SecretShape:
    """A shape of secret that is masked wherever it appears, known to the session or not.

    Contributed by plugins through the ``secret_shapes`` hook; also used by
    ``check`` to find a secret pasted into a non-secret value.
    """

    pattern: str  #: a regular expression; a group named ``secret`` narrows what is masked
    kind: str  #: what it is, for people ("Airtable personal access token")

    def compiled(self) -> re.Pattern[str]:
        """The pattern, compiled (cached by :mod:`re`)."""
        return re.compile(self.pattern)


#: The shape every session masks: a bearer token after ``Bearer`` or ``token``.
BEARER = SecretShape(r"(?i)\b(?:bearer|token)\s+(?P<secret>[A-Za-z0-9._~+/=-]{12,})", "bearer token")


@slotted.frozen
class Match:
    """Where a secret or a shape was found in a text."""

    start: int
    end: int
    secret: str | None  #: the secret's value when a known value matched (never print it)
    kind: str | None  #: the shape's kind when a shape matched


def forms(value: str) -> set[str]:
    """The forms ``value`` takes in output: itself, its lines, and their escapes.

    Only forms of at least :data:`MIN_MASKED_LENGTH` characters are returned.
    """
    import json
    from urllib.parse import quote, quote_plus, unquote

    import unicodedata

    base = {value, value.strip("\n")}
    # Percent-decoded, as a driver or a log may show a URL or a value it read; and a URL's password on
    # its own, as written and decoded (a driver's message quotes the token it could not read).
    base |= {unquote(v) for v in tuple(base)} | url_passwords(value)
    if "\n" in value:
        base.update(line.rstrip("\r") for line in value.split("\n"))
    if not value.isascii():
        # The same text composed or decomposed (é as one code point or as e and an accent).
        base.update({unicodedata.normalize(form, v) for v in base for form in ("NFC", "NFD")})
    found = set(base)
    for v in base:
        encoded = {quote(v, safe=""), quote(v), quote_plus(v, safe="")}
        # Lower-case hex digits (%2f) are as valid as upper-case ones and some encoders write them.
        encoded |= {_PERCENT.sub(lambda m: m.group().lower(), f) for f in encoded}
        once = {_py_escape(v), _py_escape_both_quotes(v), json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1],
                *encoded}
        if not v.isascii():
            once.add(repr(v.encode("utf-8", "surrogatepass"))[2:-1])  # what repr() of its bytes shows: \xc3\xa9
        found |= once
        # Escaped twice: a traceback's locals show repr(KeyError(repr(value))),
        # a JSON document embedded as a string in another shows it JSON-escaped twice.
        for f in once:
            if _CHANGED_BY_ESCAPING.search(f):  # else every escape of it is itself
                found.update((_py_escape(f), _py_escape_both_quotes(f), json.dumps(f)[1:-1]))
    return {f for f in found if len(f) >= MIN_MASKED_LENGTH}


_PERCENT = re.compile(r"%[0-9A-F]{2}")
#: A URL's userinfo password: ``scheme://user:PASSWORD@``, up to the last ``@`` before the path.
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:(?P<password>[^/]*)@[^@/]*(?:[/?#]|$)")


def url_passwords(value: str) -> set[str]:
    """The password inside ``value`` when it is a URL with one: as written, and percent-decoded."""
    from urllib.parse import unquote

    found = _URL_PASSWORD.match(value.strip())
    if not found or not found.group("password"):
        return set()
    password = found.group("password")
    return {password, unquote(password)}
#: Anything but printable ASCII other than a quote or a backslash: what repr() or JSON would escape.
_CHANGED_BY_ESCAPING = re.compile(r"""[^ !#-&(-\[\]-~]""")


def _py_escape(value: str) -> str:
    # repr() picks double quotes for a value holding ' and no ", else single quotes.
    return repr(value)[1:-1]


def _py_escape_both_quotes(value: str) -> str:
    # With both quote kinds present repr() uses single quotes and escapes them.
    return repr("'\"" + value)[4:-1]


def _lock() -> Any:
    import threading  # not at import: plugins import this module on every command

    return threading.Lock()


def _whole_word_only(form: str) -> bool:
    return form.isalpha() or form.isdigit()


def _wordy(char: str) -> bool:
    return char.isalnum() or char == "_"


class Redactor:
    """Replaces a fixed set of secret values, in all their forms, and secret shapes with the mask.

    Calling it returns a text masked; :meth:`data` masks every string inside a
    structure. envfence builds one per session (``Session.redactor()``, or
    ``pipeline.unopened_redactor`` where no session is open) and nowhere
    else: the automaton is built on first use.

    :param secrets: the secret values (never printed).
    :param shapes: the shapes masked wherever they appear (plugins' ``secret_shapes``);
        :data:`BEARER` is always added.
    """

    def __init__(self, secrets: Iterable[str] = (), *, shapes: Iterable[SecretShape] = ()) -> None:
        self._secrets = [s for s in dict.fromkeys(secrets) if s and len(s) >= MIN_MASKED_LENGTH]
        self._shapes = tuple(dict.fromkeys((*shapes, BEARER)))
        self._automaton: Any = None
        self._lock = _lock()

    def _built(self) -> Any:
        if self._automaton is None:
            with self._lock:
                if self._automaton is None:
                    self._automaton = _build(self._secrets)
        return self._automaton

    def find(self, text: str) -> list[Match]:
        """Every place in ``text`` where a secret (in any of its forms) or a shape stands."""
        found: list[Match] = []
        if not text:
            return found
        automaton = self._built()
        if automaton is not False:
            secrets = self._secrets
            last = len(text) - 1
            for end, (length, whole, index) in automaton.iter(text):
                start = end - length + 1
                if whole and (_wordy(text[end + 1]) if end < last else False):
                    continue
                if whole and start > 0 and _wordy(text[start - 1]) and not (start > 1 and text[start - 2] == "\\" and text[start - 1] in "ntr"):
                    continue
                found.append(Match(start, end + 1, secrets[index], None))
        for shape in self._shapes:
            pattern = shape.compiled()
            narrowed = "secret" in pattern.groupindex
            for m in pattern.finditer(text):
                start, end = m.span("secret") if narrowed else m.span()
                if end > start:  # an empty match hides nothing (and would put a mask between every character)
                    found.append(Match(start, end, None, shape.kind))
        return found

    def __call__(self, text: str) -> str:
        """``text`` with every secret and shape masked."""
        if not text:
            return text
        spans = sorted((m.start, m.end) for m in self.find(text))
        if not spans:
            return text
        out, at = [], 0
        cur_start, cur_end = spans[0]
        for start, end in spans[1:]:
            if start <= cur_end:  # overlapping forms of secrets: mask their union
                cur_end = max(cur_end, end)
                continue
            out += [text[at:cur_start], MASK]
            at, (cur_start, cur_end) = cur_end, (start, end)
        out += [text[at:cur_start], MASK, text[cur_end:]]
        return "".join(out)

    def each(self, texts: Sequence[str]) -> list[str]:
        """``texts`` masked in one pass (a finding's message, remediation and key), in order.

        The texts are joined by a NUL, which no secret holds and no word or
        shape continues through, so the answer is that of masking each alone.
        """
        if not any(texts):
            return list(texts)
        return self("\0".join(texts)).split("\0")

    def data(self, value: Any) -> Any:
        """``value`` with every string inside it (dict values, list items) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self(str(value))

    def multiline(self) -> list[tuple[str, ...]]:
        """The lines of each secret of several lines (for :class:`LineStream`; never print them)."""
        found = []
        for value in self._secrets:
            lines = tuple(line.rstrip("\r") for line in value.strip("\n").split("\n"))
            if len(lines) > 1:
                found.append(lines)
        return found


def plugin_shapes(plugins: Any) -> list[SecretShape]:
    """Every plugin's ``secret_shapes``, in one list; a plugin that raises contributes none and is named in a warning.

    A shape that is no :class:`SecretShape`, or whose pattern does not
    compile, is left out with a warning naming it: one plugin's typo must not
    stop every command that prints.
    """
    shapes = []
    for shape in plugins.secret_shapes().flat():
        problem = None
        if not isinstance(shape, SecretShape):
            problem = f"a secret shape must be an envfence.redaction.SecretShape, not {type(shape).__name__}"
        else:
            try:
                shape.compiled()
            except (re.error, TypeError) as exc:
                problem = f"the secret shape {shape.kind!r} has an invalid pattern ({exc})"
        if problem is None:
            shapes.append(shape)
        else:
            print(f"envfence: warning: {problem}; it was left out: fix the plugin that returns it", file=sys.stderr)
    return shapes


def _build(secrets: Sequence[str]) -> Any:
    """The automaton of every form of ``secrets``, or False when there is nothing to find."""
    if not secrets:
        return False
    import ahocorasick

    automaton = ahocorasick.Automaton()
    add, seen = automaton.add_word, set()
    for index, value in enumerate(secrets):
        for form in (value,) if _plain(value) else forms(value):
            if form not in seen:  # the first secret to claim a form names it
                seen.add(form)
                add(form, (len(form), _whole_word_only(form), index))
    automaton.make_automaton()
    return automaton


_ESCAPED = re.compile(r"[^A-Za-z0-9._~-]")


def _plain(value: str) -> bool:
    """True when every form of ``value`` is the value itself (no escape or encoding changes it)."""
    return _ESCAPED.search(value) is None


class LineStream:
    """Redacts a stream of lines, holding back only lines that may start a multi-line secret.

    For a command automation's output, which arrives line by line: a value of
    several lines (a PEM key printed with ``printf '%s\\n' "$KEY"``) is masked
    whole even though no single line holds it. A line is emitted as soon as no
    secret of several lines can be pending through it, so output stays prompt.

    Used by the runner for a command's output (:func:`envfence.runs.execute.run_command`)::

        lines = LineStream(session.redactor(), show)
        for line in process.stdout:
            lines.feed(line.rstrip("\\n"))
        lines.close()

    :param redactor: the session's redactor.
    :param emit: called with each redacted line, without its newline.
    """

    def __init__(self, redactor: Redactor, emit: Callable[[str], None]) -> None:
        self._redactor = redactor
        self._emit = emit
        self._secrets = redactor.multiline()
        self._held: list[str] = []
        self._starts: Any = None  # built on first use: which secrets a line may begin

    def feed(self, line: str) -> None:
        """One line of output, without its newline."""
        self._held.append(line)
        while self._held:
            state = self._state(self._held)
            if state == "pending":
                return
            if isinstance(state, tuple):  # a whole secret: one line, its text before and after kept
                first, last = self._held[0].rstrip("\r"), self._held[-1]
                self._emit(self._redactor(first[: len(first) - len(state[0])] + MASK + last.rstrip("\r")[len(state[-1]):]))
                self._held = []
                return
            self._emit(self._redactor(self._held.pop(0)))

    def close(self) -> None:
        """The stream ended: emit what is held, each line redacted."""
        for line in self._held:
            self._emit(self._redactor(line))
        self._held = []

    def _beginning(self, line: str) -> list[tuple[str, ...]]:
        """The secrets whose first line ``line`` ends with: one pass over the line, however many secrets.

        Checking every secret of several lines against every line would cost
        their number times the output's length.
        """
        if not self._secrets:
            return []
        if self._starts is None:
            import ahocorasick

            automaton, always = ahocorasick.Automaton(), []
            for lines in self._secrets:
                if not lines[0]:
                    always.append(lines)  # an empty first line ends every line
                elif automaton.exists(lines[0]):
                    automaton.get(lines[0])[1].append(lines)
                else:
                    automaton.add_word(lines[0], (len(lines[0]), [lines]))
            self._starts = (automaton.make_automaton() or automaton) if len(automaton) else None, always
        automaton, always = self._starts
        found = list(always)
        if automaton is not None and line:
            last = len(line) - 1
            for end, (_, group) in automaton.iter(line):
                if end == last:
                    found.extend(group)
        return found

    def _state(self, held: list[str]) -> Any:
        """The secret's lines when ``held`` spans a whole secret, ``pending`` when it may begin one, else ``free``."""
        pending = False
        n = len(held)
        for lines in self._beginning(held[0].rstrip("\r")):
            if n > len(lines):
                continue
            if any(held[i].rstrip("\r") != lines[i] for i in range(1, min(n, len(lines) - 1))):
                continue
            if n == len(lines):
                if held[-1].rstrip("\r").startswith(lines[-1]):
                    return lines
                continue
            pending = True
        return "pending" if pending else "free"


class _RedactingWriter(io.TextIOBase):
    """A text stream that passes complete lines through a :class:`LineStream`."""

    #: A line longer than this is let through without waiting for its end.
    LIMIT = 64 * 1024

    def __init__(self, lines: LineStream) -> None:
        super().__init__()
        self._lines = lines
        self._partial = ""
        self._lock = _lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock, uncaptured():  # what the emitter writes goes out, not back in here
            self._partial += text
            *complete, self._partial = self._partial.split("\n")
            for line in complete:
                self._lines.feed(line)
            if len(self._partial) > self.LIMIT:
                self._lines.feed(self._partial)
                self._partial = ""
        return len(text)

    def close(self) -> None:
        with self._lock, uncaptured():
            if self._partial:
                self._lines.feed(self._partial)
                self._partial = ""
            self._lines.close()
        super().close()


class _Threads:
    """Which threads capture their output now; ``sys.stdout``/``sys.stderr`` are :class:`_Router` while any does."""

    def __init__(self) -> None:
        import threading

        self.local = threading.local()  # .capture: (stdout writer, stderr writer); .through: a depth
        self.lock = threading.Lock()
        self.count = 0
        self.originals: tuple[Any, Any] | None = None
        #: While any thread captures: writers for the threads that capture nothing of their own (a thread
        #: an automation started, a library's worker): redacted, to the streams of entry.
        self.others: tuple[Any, Any] | None = None


_THREADS = _Threads()


class _Router(io.TextIOBase):
    """Stands for ``sys.stdout`` (or ``sys.stderr``) while a thread captures its output.

    A write goes to the capture of the thread that writes; from a thread that
    captures nothing (one the automation started), redacted to the stream of
    entry; while emitting a captured line, to the stream of entry as it is.
    Threads capturing side by side (webhook workers) each keep their own.
    """

    def __init__(self, original: Any, index: int) -> None:
        super().__init__()
        self.original = original
        self._index = index

    def _target(self) -> Any:
        local = _THREADS.local
        if getattr(local, "through", 0):
            return self.original
        capture = getattr(local, "capture", None) or _THREADS.others
        return self.original if capture is None else capture[self._index]

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        target = self._target()
        if not target.closed:
            target.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


@contextlib.contextmanager
def uncaptured() -> Iterator[None]:
    """Within the block, this thread's writes to ``sys.stdout``/``sys.stderr`` go to the streams of entry, uncaptured."""
    local = _THREADS.local
    local.through = getattr(local, "through", 0) + 1
    try:
        yield
    finally:
        local.through -= 1


@contextlib.contextmanager
def redirected_output(
    redactor: Redactor,
    stdout: Callable[[str], None] | None = None,
    stderr: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Capture ``sys.stdout`` and ``sys.stderr`` for a block and pass them through ``redactor``.

    For a function automation's run: whatever it prints or writes to
    ``sys.stderr`` in this thread reaches its destination line by line, redacted, a value of
    several lines masked whole (see :class:`LineStream`). A partial line waits
    for its newline (or the end of the block), so a secret written in two
    pieces on one line is still caught.

    Used by the runner around a function automation's call
    (:func:`envfence.runs.execute.call_function`)::

        with redirected_output(session.redactor(), stdout=show, stderr=show):
            result = function(ctx)

    This thread's output goes to ``stdout``/``stderr``: threads capturing side
    by side (webhook workers) each keep their own. Every other thread's output
    (a thread the automation started) is redacted too, with the redactor of the
    first capture, and goes to the streams of entry: masking holds for the
    whole process, not only the thread that called. Within :func:`uncaptured`
    (and while a captured line is passed on) a thread writes to the streams of
    entry.

    :param stdout: called with each redacted line of standard output
        (default: written, with its newline, to the ``sys.stdout`` of entry).
    :param stderr: the same for standard error.
    """
    threads = _THREADS
    with threads.lock:
        if threads.count == 0:
            threads.originals = (sys.stdout, sys.stderr)
            threads.others = (_RedactingWriter(LineStream(redactor, _writer(sys.stdout))),
                              _RedactingWriter(LineStream(redactor, _writer(sys.stderr))))
            sys.stdout, sys.stderr = _Router(sys.stdout, 0), _Router(sys.stderr, 1)  # type: ignore[assignment]
        threads.count += 1
        old_out, old_err = threads.originals  # type: ignore[misc]
    out = _RedactingWriter(LineStream(redactor, stdout or _writer(old_out)))
    err = _RedactingWriter(LineStream(redactor, stderr or _writer(old_err)))
    previous = getattr(threads.local, "capture", None)
    threads.local.capture = (out, err)
    try:
        yield
    finally:
        threads.local.capture = previous
        others = None
        with threads.lock:
            threads.count -= 1
            if threads.count == 0:
                sys.stdout, sys.stderr = threads.originals  # type: ignore[misc]
                threads.originals, others, threads.others = None, threads.others, None
        for writer in (out, err, *(others or ())):
            writer.close()


def _writer(stream: Any) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write


def record_patcher(redactor: Redactor, detailed: bool = False) -> Callable[[dict], None]:
    """A loguru patcher that redacts a record before any sink sees it.

    The message and the extra fields are redacted; an exception is formatted
    here (with each frame's local variables when ``detailed``), redacted, and
    appended to the message, so no sink formats the raw exception itself.
    """

    def patch(record: dict) -> None:
        exc = record.get("exception")
        message = record["message"]
        if exc is not None:
            import traceback

            args = (exc.type or BaseException, exc.value or BaseException(), exc.traceback)
            try:
                trace = traceback.TracebackException(*args, capture_locals=detailed)
            except Exception:  # a local whose repr() fails must not lose the record
                trace = traceback.TracebackException(*args)
            message = f"{message}\n{''.join(trace.format()).rstrip()}"
            record["exception"] = None
        record["message"] = redactor(message)
        for key, value in list(record["extra"].items()):
            record["extra"][key] = redactor.data(value)

    return patch


def environ_secrets(environ, declared: Iterable[str] = ()) -> list[str]:
    """The values of an environment's secret variables: secret-named (``*_KEY``,
    ``*_TOKEN``…) or ``declared`` secret (settings' ``secrets``, declared settings)."""
    from .pipeline import is_secret_key

    declared = set(declared)
    return [value for key, value in environ.items() if is_secret_key(key, declared)]
