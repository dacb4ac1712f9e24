"""``envfence advise``: concrete recommendations from an environment's history, each with its numbers and what acts on it.

Settings (all optional)::

    [advise]
    window = "30d"     # how far back baselines and trends look
    growth = 0.4       # a duration whose trend grew this much over the window is advice
    pile_up = 3        # this many automations firing in the same minute on one host is advice
    disk_days = 30     # a disk that fills within this many days is advice

Each piece of advice has a stable ``code``, the environment and automation
it concerns, a message with the numbers behind it, and ``action``: the
setting to change or the command to run. Other plugins add theirs through the
``advice`` hook this plugin declares
(:mod:`~envfence_builtins.operations.advice_hooks`): the ``alerts`` plugin
names environments nobody is alerted for. The rules are
:mod:`~envfence_builtins.operations.advise_rules`, the command ``advise_cli``.
"""

from __future__ import annotations

from envfence import hookimpl
from envfence.errors import ConfigurationError

SECTION = "advise"


@hookimpl
def register_hookspecs(register) -> None:
    """Offer ``advice``: every plugin recommends from what it knows."""
    from envfence_builtins.operations.advice_hooks import AdviceHookspecs

    register(AdviceHookspecs)


@hookimpl
def advice(session, now):
    """The recommendations from the environment's history and schedules (:mod:`~envfence_builtins.operations.advise_rules`)."""
    from envfence_builtins.operations.advise_rules import advise

    return advise(session, now)


@hookimpl
def declare_tables():
    """The ``[advise]`` table."""
    from envfence_builtins.operations.analysis import ADVISE_TABLE

    return [ADVISE_TABLE]


@hookimpl
def validate(session):
    """``[advise]`` values are positive numbers and its window a duration."""
    if not session.settings.section(SECTION):
        return []  # before the imports: the rules and the analysis load only to judge a table that is there
    from envfence.models import Finding

    from envfence_builtins.operations.advise_rules import options
    from envfence_builtins.operations.analysis import window

    try:
        options(session.settings)
        window(session.settings)
    except ConfigurationError as exc:
        return [Finding("ADVISE_INVALID", "error", exc.message, exc.hint, key=SECTION, plugin=SECTION)]
    return []


@hookimpl
def register_commands(cli) -> None:
    """Add ``envfence advise``."""
    from envfence_builtins.operations.advise_cli import advise as command

    cli.add_command(command)
