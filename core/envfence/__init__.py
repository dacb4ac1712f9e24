"""envfence: environment-aware, safe automation scripts.

Importing this package is cheap: no plugin, no HTTP client and no log sink is
loaded until a session is opened. The public names below are resolved on
first use.

    import envfence

    session = envfence.open_session(env="production")
    session.config["AIRTABLE_BASE_ID"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Library convention: envfence's loguru records are off until an embedding
# tool calls ``logger.enable("envfence")``. Done lazily by the logging plugin.

_LAZY = {
    "open_session": "envfence.pipeline",
    "session": "envfence.pipeline",
    "reset_session": "envfence.pipeline",
    "Session": "envfence.pipeline",
    "hookimpl": "envfence.plugins",
    "PluginManager": "envfence.plugins",
    "HookResult": "envfence.hookcalls",
    "StashKey": "envfence.stash",
    "CredentialNaming": "envfence.naming",
    "EnvfenceError": "envfence.errors",
    "ConfigurationError": "envfence.errors",
    "UsageError": "envfence.errors",
    "SafetyError": "envfence.errors",
    "Secret": "envfence.models",
    "Finding": "envfence.models",
    "Environment": "envfence.models",
    "Config": "envfence.models",
    "ConfigLayer": "envfence.models",
    "Report": "envfence.models",
    "SettingSpec": "envfence.models",
    "Automation": "envfence.models",
    "EnvPaths": "envfence.models",
    "AuditEvent": "envfence.models",
    "Profile": "envfence.profiles",
    "DevelopmentProfile": "envfence.profiles",
    "ProductionProfile": "envfence.profiles",
}

# Written out (not computed from _LAZY) so that type checkers see the exports; a test keeps the two equal.
__all__ = [
    "AuditEvent",
    "Automation",
    "Config",
    "ConfigLayer",
    "ConfigurationError",
    "CredentialNaming",
    "DevelopmentProfile",
    "EnvPaths",
    "EnvfenceError",
    "Environment",
    "Finding",
    "HookResult",
    "PluginManager",
    "ProductionProfile",
    "Profile",
    "Report",
    "SafetyError",
    "Secret",
    "Session",
    "SettingSpec",
    "StashKey",
    "UsageError",
    "hookimpl",
    "open_session",
    "reset_session",
    "session",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from .errors import ConfigurationError, EnvfenceError, SafetyError, UsageError
    from .models import AuditEvent, Automation, Config, ConfigLayer, Environment, EnvPaths, Finding, Report, Secret, SettingSpec
    from .hookcalls import HookResult
    from .naming import CredentialNaming
    from .plugins import PluginManager, hookimpl
    from .stash import StashKey
    from .profiles import DevelopmentProfile, ProductionProfile, Profile
    from .pipeline import Session, open_session, reset_session, session


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'envfence' has no attribute {name!r}")
    import sys

    __import__(module)  # the import statement's machinery, which `python -X importtime` reports
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
