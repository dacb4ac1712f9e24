"""``envfence plugin new NAME``: a new plugin distribution, ready to install and test."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import UsageError
from . import State, pass_state
from .examples import examples
from .output import dumps

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "An envfence plugin: {name}."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{requirement}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# envfence finds the plugin through this entry point; its name is the
# plugin's name in `envfence plugins`, `-p no:NAME` and the settings table.
[project.entry-points.envfence]
{entry} = "{module}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
"""

_MODULE = '''\
"""{dist}: an envfence plugin.

Settings, in the project's envfence.toml::

    [{entry}]
    required = ["API_URL"]   # keys that must be set in every environment
"""

from __future__ import annotations

from envfence import Session, hookimpl
from envfence.errors import ConfigurationError
from envfence.models import Finding
from envfence.settings_kinds import texts
from envfence.settings_tables import Table

#: ``[{entry}]``, declared once: envfence check, envfence config schema and the typed reads below use it.
TABLE = Table("{entry}", "{dist}'s settings")
TABLE.add("required", texts(example="API_URL"), [], "keys that must be set in every environment")


@hookimpl
def declare_tables() -> list[Table]:
    """The ``[{entry}]`` table."""
    return [TABLE]


@hookimpl
def validate(session: Session) -> list[Finding]:
    """Every key listed in ``[{entry}] required`` is set in this environment."""
    try:
        required = TABLE.read(session.settings)["required"]
    except ConfigurationError:
        return []  # a value of the wrong kind: envfence check names it (SETTINGS_INVALID)
    findings: list[Finding] = []
    for key in required:
        if session.config.credential_key(key) is None:
            findings.append(
                Finding(
                    code="{code}_MISSING",
                    severity=session.profile.escalate("warning"),
                    message=f"{{key}} is not set in {{session.environment.name}}",
                    remediation=f"set {{key}} in .env or .env.{{session.environment.name}}",
                    key=key,
                    plugin="{entry}",
                )
            )
    return findings
'''

_CONFTEST = '''\
"""envfence's test kit: its fixtures (envfence_project, envfence_plugin, ...) for these tests."""

pytest_plugins = ["envfence.testing.pytest_plugin"]
'''

_TEST = '''\
"""Tests for {dist}, with the fixtures of envfence.testing."""

from envfence.testing.project import Project


def test_plugin_is_listed(envfence_project: Project) -> None:
    result = envfence_project.run("plugins")
    assert result.exit_code == 0
    assert "{entry}" in result.stdout


def test_a_missing_required_key_is_reported(envfence_project: Project) -> None:
    envfence_project.settings('[{entry}]\\nrequired = ["API_URL"]\\n')
    findings = envfence_project.session().report.findings
    assert [(f.code, f.key) for f in findings if f.plugin == "{entry}"] == [("{code}_MISSING", "API_URL")]


def test_a_required_list_of_the_wrong_kind_is_named_by_check(envfence_project: Project) -> None:
    envfence_project.settings('[{entry}]\\nrequired = "API_URL"\\n')
    findings = envfence_project.session().report.findings
    assert any(f.code == "SETTINGS_INVALID" and f.key == "{entry}.required" for f in findings)


def test_a_set_key_passes(envfence_project: Project) -> None:
    envfence_project.settings('[{entry}]\\nrequired = ["API_URL"]\\n')
    envfence_project.write(".env", "API_URL=https://example.invalid\\n")
    assert "{code}_MISSING" not in envfence_project.session().report.codes()
'''

_README = """\
# {dist}

An envfence plugin. It checks that the keys listed in its settings table are
set in every environment:

```toml
[{entry}]
required = ["API_URL"]
```

## Develop

```sh
pip install -e '.[test]'
envfence plugins            # lists "{entry}"
envfence plugins --hooks    # shows where it is called
pytest                      # the envfence.testing fixtures come with envfence
```

Add hooks in `{module}/__init__.py`; the hook reference lists them all.
"""


def envfence_requirement() -> str:
    """The plugin's requirement on envfence: by name, at least the running version.

    A name travels: a colleague who clones the plugin installs it beside any
    envfence that satisfies it, from an index or a wheelhouse
    (``pip install --find-links wheelhouse envfence-NAME``). A local checkout
    is installed first, by hand (``envfence plugin new --envfence PATH`` says how),
    never written into the plugin's files.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"envfence>={version('envfence')}"
    except PackageNotFoundError:
        return "envfence"


def local_envfence(source: str) -> Path:
    """A checkout folder or a built wheel to install envfence from, for local development."""
    path = Path(source).expanduser()
    if not (path / "pyproject.toml").is_file() and not (path.is_file() and path.suffix == ".whl"):
        raise UsageError(
            f"--envfence {source}: neither an envfence checkout (a folder with pyproject.toml) nor a wheel (.whl)",
            "give the checkout's folder, or the wheel `make dist` wrote into dist/",
        )
    return path.resolve()


def scaffold(name: str, where: Path, requirement: str = "envfence") -> tuple[Path, list[Path]]:
    """Write a plugin distribution for ``name`` under ``where``; return its folder and files.

    :param requirement: the dependency on envfence (see :func:`envfence_requirement`).
    """
    name = name.strip().lower().removeprefix("envfence-")
    if not _NAME.match(name):
        raise UsageError(
            f"plugin name {name!r} is not usable",
            "use lower-case letters, digits and single hyphens, starting with a letter (e.g. acme-billing)",
        )
    dist = f"envfence-{name}"
    entry = name.replace("-", "_")
    module = f"envfence_{entry}"
    target = where / dist
    if target.exists():
        raise UsageError(f"{target} already exists", "choose another name or --dir, or remove the folder")
    values = {"name": name, "dist": dist, "entry": entry, "module": module, "code": entry.upper(),
              "requirement": requirement}
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{module}/__init__.py": _MODULE,
        "tests/conftest.py": _CONFTEST,
        f"tests/test_{entry}.py": _TEST,
    }
    written = []
    for rel, template in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
        written.append(path)
    return target, written


@click.group()
def plugin() -> None:
    """Create plugins."""


@examples(
    "envfence plugin new acme-billing",
    "envfence plugin new acme-billing --dir ~/src --envfence ~/src/envfence",
)
@plugin.command("new")
@click.argument("name")
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              help="Where to create the envfence-NAME folder.")
@click.option("--envfence", "source", metavar="PATH",
              help="For local development: install envfence from this checkout or wheel first (the plugin still names envfence by name).")
@pass_state
def new(state: State, name: str, where: Path, source: str | None) -> None:
    """Scaffold envfence-NAME: an entry point, one hook, a passing test and a README.

    The plugin depends on ``envfence>=VERSION`` by name, so it installs
    wherever envfence does: from an index, or from a wheelhouse with
    ``pip install --find-links``. ``--envfence PATH`` names a local checkout or
    wheel to install first while developing; nothing of it is written into the
    plugin.
    """
    local = local_envfence(source) if source else None
    requirement = envfence_requirement()
    target, written = scaffold(name, where, requirement)
    steps = ([f"pip install '{local}'"] if local else []) + [f"pip install -e '{target}[test]'", "envfence plugins", f"cd {target} && pytest"]
    if state.json:
        click.echo(dumps({"path": str(target), "files": [str(p.relative_to(target)) for p in written],
                          "envfence": requirement, "next": steps}))
        return
    click.echo(f"created {target} (requires {requirement})")
    for path in written:
        click.echo(f"  {path.relative_to(target)}")
    click.echo("next:")
    for step in steps:
        click.echo(f"  {step}")
