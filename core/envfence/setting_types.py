"""The types a declared setting may have, and how a value of each is read.

A ``.env`` value is text; a declared type says what the text must be and what
:meth:`Session.setting <envfence.pipeline.Session.setting>` gives back:

=========  ==========================================  ====================
type       accepts                                     gives
=========  ==========================================  ====================
str        anything                                    ``str``
int        ``42``, ``-3``                              ``int``
float      ``0.5``, ``1e3``                            ``float``
bool       true/false, yes/no, on/off, 1/0             ``bool``
url        ``scheme://host...``                        ``str``
path       a non-empty path                            ``pathlib.Path``
port       1 to 65535                                  ``int``
cron       a five-field cron expression or ``@daily``  ``str``
email      ``name@domain``                             ``str``
=========  ==========================================  ====================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError("is not a number") from None


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("is not true/false (also yes/no, on/off, 1/0)")


def _url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip())
    if not parts.scheme or not (parts.netloc or parts.scheme == "file"):
        raise ValueError("is not a URL (scheme://host/...)")
    return text.strip()


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("is not a path")
    return Path(text.strip()).expanduser()


def _port(text: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError("is not a port (1 to 65535)")
    return number


def _cron(text: str) -> str:
    from .cron import CronError, parse

    try:
        parse(text.strip())
    except CronError as exc:
        raise ValueError(f"is not a cron expression ({exc})") from None
    return text.strip()


def _email(text: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text.strip()):
        raise ValueError("is not an e-mail address")
    return text.strip()


#: type name -> reader: the typed value, or ValueError saying what the text is not.
TYPES: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "url": _url,
    "path": _path,
    "port": _port,
    "cron": _cron,
    "email": _email,
}


def convert(type_name: str | None, text: str) -> Any:
    """``text`` read as ``type_name`` (text itself for None or ``str``).

    :raises ValueError: the text is not of that type; the message says what
        it is not, never the text itself (it may be a secret).
    """
    return TYPES[type_name or "str"](text)


def read_setting(session: Any, name: str, default: Any = None) -> Any:
    """Declared setting ``name`` in ``session``'s environment, converted to its type (see :meth:`Session.setting`)."""
    from .errors import ConfigurationError
    from .models import Secret

    specs = session.settings_specs
    spec = next((s for s in specs if s.name == name and s.type), None) or next((s for s in specs if s.name == name), None)
    config = session.config
    key = config.credential_key(name) if spec is None or spec.credential else (name if name in config else None)
    if key is None:
        return default
    value = config[key]
    if isinstance(value, Secret) or spec is None:
        return value
    try:
        return convert(spec.type, value)
    except ValueError as exc:
        raise ConfigurationError(f"{key} (set in {config.entry(key).source}) {exc}", f"set it to a value of type {spec.type}") from None

