"""Every layer validated: a value that a higher layer overrides is checked as well.

``.env`` may hold a malformed token that ``.env.development`` overrides today;
the next change to ``.env.development`` exposes it. :func:`shadowed_findings`
validates each overridden value in turn: pass *d* gives every key the value
*d* layers below its winner, runs the ``validate`` hook offline on that
configuration, and reports what it finds about a replaced key that the merged
configuration does not already have, as a warning naming both layers
(``LAYER_VALUE_INVALID``). Declared defaults are not a layer anyone edits, and
are not checked again.
"""

from __future__ import annotations

from typing import Any, Iterable

from . import slotted
from .models import Config, ConfigEntry, Finding

#: The lowest layer: declared defaults, checked by the declarations themselves.
DEFAULTS = "defaults"


def shadow_configs(config: Config) -> list[tuple[Config, dict[str, tuple[str, str]]]]:
    """For each depth, the configuration with every overridden key one layer further down, and ``{key: (its layer, the winner)}``."""
    shadows = []
    depth = 1
    while True:
        entries: dict[str, ConfigEntry] = dict(config.entries)
        replaced: dict[str, tuple[str, str]] = {}
        for key, entry in config.entries.items():
            lower = [pair for pair in entry.overridden if pair[0] != DEFAULTS]
            if len(lower) >= depth:
                source, value = lower[-depth]
                entries[key] = slotted.evolve(entry, value=value, source=source, overridden=tuple(lower[: len(lower) - depth]))
                replaced[key] = (source, entry.source)
        if not replaced:
            return shadows
        shadows.append((slotted.evolve(config, entries=entries), replaced))
        depth += 1


def shadowed_findings(session: Any, found: Iterable[Finding]) -> list[Finding]:
    """``LAYER_VALUE_INVALID`` warnings for overridden values that the validators reject.

    A finding the merged configuration already has (same code and key) is
    not repeated; each (key, layer) is reported once.
    """
    from .stash import Stash

    known = {(f.code, f.key) for f in found}
    reported: set[tuple[str, str]] = set()
    warnings: list[Finding] = []
    for config, replaced in shadow_configs(session.config):
        # A view of the session with the lower values; its own stash and held audit, so nothing leaks back.
        shadow = slotted.evolve(session, config=config, stash=Stash(), dry_run=True, report=None, redactor=None, automations=None)
        result = shadow.plugins.validate(session=shadow, live=False)
        # Masked once, below, by the session's redactor: it holds every value the shadow does (the
        # overridden ones too), so the findings left out here are never masked (nor the shadow's redactor built).
        for f in result.flat() + result.findings():
            if f.key not in replaced or f.severity == "info" or (f.code, f.key) in known:
                continue
            lower, winner = replaced[f.key]
            if (f.key, lower) in reported:
                continue
            reported.add((f.key, lower))
            warnings.append(_warning(f, lower, winner))
    return list(session.redact_findings(warnings))


def _warning(finding: Finding, lower: str, winner: str) -> Finding:
    return Finding(
        code="LAYER_VALUE_INVALID",
        severity="warning",
        message=(
            f"{finding.key} in {lower} is not valid ({finding.code}: {finding.message}); "
            f"{winner} overrides it today, and the next change to {winner} exposes it"
        ),
        remediation=f"fix it or remove it from {lower}" + (f" ({finding.remediation})" if finding.remediation else ""),
        key=finding.key,
        plugin=finding.plugin,
        file=lower if lower.startswith(".env") else None,
    )
