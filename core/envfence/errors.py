"""Exceptions that carry an exit code and a next step.

Expected problems are :class:`~envfence.models.Finding` values; these are for
what stops envfence from going on. Every message names the file, line or key
concerned and says what to do.
"""

from __future__ import annotations

#: Exit codes, as the CLI documents them (0: success).
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_CONFIG = 4


class EnvfenceError(Exception):
    """Base of envfence's own errors: a message, a hint, an exit code."""

    exit_code = EXIT_FINDINGS

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(EnvfenceError):
    """The command line asked for something that does not exist (exit 2)."""

    exit_code = EXIT_USAGE


class SafetyError(EnvfenceError):
    """A run was blocked by a safety guard (exit 3)."""

    exit_code = EXIT_BLOCKED


class ConfigurationError(EnvfenceError):
    """Settings or configuration cannot be loaded (exit 4)."""

    exit_code = EXIT_CONFIG
