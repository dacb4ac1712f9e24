"""Classify failures: configuration, credential, network, data, resource_limit or bug.

The class tells an operator where to look: a configuration failure is fixed in
the settings, a credential one by rotating or correcting a token, a network one
usually by waiting (it is retried), a data one in the input, a resource_limit
one in the environment's ``[resources]`` or the job's appetite, a bug in the code.
Exceptions are recognised by their type and, for HTTP errors, their status,
without importing the libraries that raise them.
"""

from __future__ import annotations

from envfence import hookimpl

#: sysexits.h codes a command automation can use to say what went wrong.
_SYSEXITS = {
    65: "data",  # EX_DATAERR
    66: "data",  # EX_NOINPUT
    69: "network",  # EX_UNAVAILABLE
    75: "network",  # EX_TEMPFAIL
    77: "credential",  # EX_NOPERM
    78: "configuration",  # EX_CONFIG
}

#: Exception types that mean the input was wrong (``Error`` is ``csv.Error``).
_DATA_NAMES = {"ValueError", "KeyError", "IndexError", "UnicodeError", "JSONDecodeError", "Error", "ValidationError"}
#: Name resolution failures, raised by socket and wrapped by HTTP clients.
_NETWORK_NAMES = {"gaierror", "herror", "NewConnectionError", "MaxRetryError", "SSLError"}


def classify(error: BaseException) -> str:
    """The class of ``error``; ``bug`` when nothing more specific fits."""
    from envfence.errors import ConfigurationError, SafetyError, UsageError
    from envfence.retry import is_retryable, status_code
    from envfence.runner import ResourceLimitHit, RunFailed

    if isinstance(error, (ConfigurationError, SafetyError, UsageError)):
        return "configuration"
    if isinstance(error, ResourceLimitHit):
        return "resource_limit"
    if isinstance(error, RunFailed):
        return _SYSEXITS.get(error.returncode, "bug")
    code = status_code(error)
    if code in (401, 403):
        return "credential"
    if code in (400, 404, 409, 422):
        return "data"
    if is_retryable(error):
        return "network"
    if isinstance(error, PermissionError):
        return "configuration"
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return "data"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _NETWORK_NAMES:
        return "network"
    if type(error).__name__ in _DATA_NAMES or (names & _DATA_NAMES and not names & {"OSError"}):
        return "data"
    return "bug"


@hookimpl(trylast=True)
def classify_error(error: BaseException) -> str:
    """The built-in classification; a plugin answering first refines it."""
    return classify(error)
