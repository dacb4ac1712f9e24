"""The process environment as a configuration layer.

It is an overlay: a variable joins the configuration only when the project
already knows its key (from a file layer or a declared setting) or when it
carries an environment's credential prefix. ``PATH`` and friends stay out.
"""

from __future__ import annotations

from typing import Mapping

from envfence import hookimpl
from envfence.models import PRECEDENCE, ConfigLayer


@hookimpl
def load_config(environ: Mapping[str, str]) -> list[ConfigLayer]:
    """One overlay layer holding the process environment."""
    return [ConfigLayer("process environment", dict(environ), PRECEDENCE["process environment"], overlay=True, plugin="process_environment")]
