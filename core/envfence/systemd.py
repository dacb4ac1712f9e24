"""Values as systemd reads them back: a setting's literal text, an ``ExecStart=`` command line.

Shared by everything that writes unit files (the ``schedule`` plugin's
timers, ``serve --emit systemd``), so each says a value the one way systemd
reads it (systemd.service(5), "Command lines"; systemd.unit(5), "Specifiers").
"""

from __future__ import annotations


def systemd_literal(text: str) -> str:
    """``text`` as a systemd setting's value: systemd expands ``%x`` specifiers in every setting, ``%%`` is a percent sign."""
    return text.replace("%", "%%")


def systemd_command(argv: list[str]) -> str:
    """``argv`` as an ``ExecStart=`` value: each word in double quotes, read back by systemd as itself.

    systemd reads C escapes inside quotes and out (``\\s`` is a space) and
    expands ``%`` specifiers everywhere and ``$VAR`` in the arguments (not in
    the program's path): a backslash and a double quote are escaped, ``%``
    and an argument's ``$`` doubled (systemd.service(5), "Command lines").
    """
    def word(text: str, dollar: str) -> str:
        return '"' + systemd_literal(text.replace("\\", "\\\\").replace('"', '\\"')).replace("$", dollar) + '"'

    return " ".join(word(w, "$$" if i else "$") for i, w in enumerate(argv))
