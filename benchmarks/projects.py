"""Generated projects: N keys spread over ``.env`` and ``.env.production``.

Each project holds ``keys`` distinct keys. ``.env`` holds most of them;
``.env.production`` overrides a tenth of them and adds a few of its own. Every
seventh key is a secret by its name (``_TOKEN``, ``_PASSWORD``, ``_API_KEY``),
a few values are quoted with spaces, and comments and blank lines are sprinkled
in, as in a real file. No value holds ``$``: the contenders differ on
interpolation and the comparison is about loading, not expanding. An
``interpolated`` project is the same with every tenth value of ``.env``
referring to the key before it (``${KEY}/sub``), for the interpolation case.
"""

from __future__ import annotations

from pathlib import Path

import attrs

_SECRET_ENDINGS = ("_TOKEN", "_PASSWORD", "_API_KEY")
_SETTINGS = """\
# A project made by envfence's benchmarks.
[environments.development]
aliases = ["dev"]

[environments.production]
aliases = ["prod"]
"""


@attrs.frozen
class Project:
    """A generated project and the production configuration it must load to."""

    root: Path
    keys: int
    expected: dict[str, str]  #: every key with its production value
    secrets: frozenset[str]
    overridden: str  #: a key whose production value overrides .env


def key_name(index: int) -> str:
    """The name of key ``index``; every seventh is a secret."""
    if index % 7 == 3:
        return f"SERVICE_{index:05d}{_SECRET_ENDINGS[index % 3]}"
    return f"SETTING_{index:05d}"


def _value(index: int, environment: str) -> str:
    if index % 7 == 3:  # a secret: a shape no other value holds (envfence masks a secret found inside any value)
        return f"{environment}-secret-{index:05d}-k{index * 7919 % 100_003:05d}"
    if index % 11 == 5:
        return f"a value with spaces for {environment} number {index}"
    return f"{environment}-value-{index:05d}-{'x' * (index % 17)}"


def _line(key: str, value: str) -> str:
    return f'{key}="{value}"' if " " in value else f"{key}={value}"


def generate_project(directory: Path, keys: int, interpolated: bool = False) -> Project:
    """Write a project of ``keys`` keys into ``directory`` (created) and describe it.

    :param interpolated: every tenth value of ``.env`` is ``${<the key before>}/sub``;
        ``expected`` holds what envfence expands it to (the referred key's production value).
    """
    directory.mkdir(parents=True, exist_ok=True)
    own = max(1, keys // 20)  # keys only .env.production sets
    base = keys - own
    overrides = max(1, keys // 10)
    expected: dict[str, str] = {}
    lines = ["# shared configuration"]
    references: dict[str, str] = {}
    for i in range(base):
        if i % 50 == 49:
            lines += ["", f"# section {i // 50}"]
        if interpolated and i % 10 == 9:
            references[key_name(i)] = key_name(i - 1)
            lines.append(f"{key_name(i)}=${{{key_name(i - 1)}}}/sub")
            continue
        expected[key_name(i)] = _value(i, "base")
        lines.append(_line(key_name(i), expected[key_name(i)]))
    (directory / ".env").write_text("\n".join(lines) + "\n")

    step = max(1, base // overrides)
    prod = ["# production overrides"]
    for i in list(range(0, base, step))[:overrides] + list(range(base, keys)):
        expected[key_name(i)] = _value(i, "production")
        prod.append(_line(key_name(i), expected[key_name(i)]))
    (directory / ".env.production").write_text("\n".join(prod) + "\n")
    for key, referred in references.items():
        expected.setdefault(key, expected[referred] + "/sub")
    (directory / "envfence.toml").write_text(_SETTINGS)
    secrets = frozenset(k for k in expected if k.endswith(_SECRET_ENDINGS))
    return Project(directory, keys, expected, secrets, overridden=key_name(0))


def job_project(directory: Path, keys: int, automations: tuple[str, ...] = ("noop",)) -> Path:
    """A project that production lets run: ``keys`` plain settings, its one secret under the production prefix.

    Each automation runs ``jobs:noop``, a function that returns at once.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".env").write_text("".join(_line(key_name(i * 7 + 1), _value(i, "base")) + "\n" for i in range(keys - 1)))
    (directory / ".env.production").write_text("PROD_API_TOKEN=bench-4f1e9a7c3b5d8e2f6a0c4e8b2d6f0a3c\n")
    # Production runs only on an enrolled host: this machine is enrolled.
    import json
    import socket

    enrolled = f"\n[hostname.production]\nhosts = [{json.dumps(socket.gethostname())}]\n"
    (directory / "envfence.toml").write_text(
        _SETTINGS + enrolled + "".join(f'\n[automations.{name}]\nrun = "jobs:noop"\n' for name in automations)
    )
    (directory / "jobs.py").write_text("def noop(ctx):\n    pass\n")
    return directory
