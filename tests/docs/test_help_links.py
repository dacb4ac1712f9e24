"""Every link in every ``--help`` leads somewhere: a page of the user guide that ships in the wheel, and its section.

A help text names a page as ``docs/NAME.md`` (with ``#SECTION``) or as
``envfence docs NAME``; the wheel carries the pages as ``envfence/docs/*.md``
and ``envfence docs`` reads them. A web address in a help text is a link to
nowhere the user can count on offline: none is allowed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from envfence.cli.docs import anchors, pages

DOC_MENTION = re.compile(r"docs/([a-z][a-z0-9-]*)\.md(?:#([a-z0-9-]+))?|envfence docs ([a-z][a-z0-9-]*)")
WEB = re.compile(r"https?://[^\s)`'\"]+")


def help_texts(run_cli, cwd: Path) -> dict[str, str]:
    """``--help`` of every command, the plugins' included, by command path."""
    from envfence.cli import cli

    found: dict[str, str] = {}

    def walk(command: click.Command, words: list[str], ctx: click.Context) -> None:
        found[" ".join(["envfence", *words])] = run_cli(*words, "--help", cwd=cwd).stdout
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*words, name], click.Context(sub, parent=ctx, info_name=name))

    walk(cli, [], click.Context(cli, info_name="envfence"))
    return found


def broken_links(text: str) -> list[str]:
    """What in ``text`` links nowhere: an unknown page, a section the page lacks, a web address."""
    known = pages()
    broken = [f"web address {url}" for url in WEB.findall(text) if not url.startswith(("http://127.0.0.1", "http://localhost"))]
    for match in DOC_MENTION.finditer(text):
        name, section = match[1] or match[3], match[2]
        if name not in known:
            broken.append(f"no page {name}")
        elif section and section not in anchors(known[name]):
            broken.append(f"no section #{section} in {name}")
    return broken


def test_every_link_in_every_help_names_a_shipped_page_and_section(run_cli, tmp_path):
    texts = help_texts(run_cli, tmp_path)
    assert len(texts) >= 60
    mentioned = {m[1] or m[3] for text in texts.values() for m in DOC_MENTION.finditer(text)}
    assert {"running", "validation", "fakes"} <= mentioned
    assert {path: broken_links(text) for path, text in texts.items() if broken_links(text)} == {}


def test_a_broken_link_is_told_apart():
    assert broken_links("see docs/running.md#exit-codes and `envfence docs fakes`") == []
    assert broken_links("see docs/runing.md") == ["no page runing"]
    assert broken_links("see docs/running.md#exit-cods") == ["no section #exit-cods in running"]
    assert broken_links("see https://envfence.example/running") == ["web address https://envfence.example/running"]


def test_the_wheel_carries_every_page_and_envfence_docs_reads_it_there(envfence_wheel, tmp_path):
    wheel = envfence_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"envfence/docs/{name}.md" for name in pages()} <= names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    shown = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'envfence'; from envfence.cli import main; main()", "docs", "running", "--path"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path,
        capture_output=True, text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(target / "envfence" / "docs" / "running.md")
    page = subprocess.run(
        [sys.executable, "-c", "from envfence.cli import main; main()", "docs", "running"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path,
        capture_output=True, text=True,
    )
    assert "## Exit codes" in page.stdout


def test_envfence_docs_lists_the_pages_and_refuses_an_unknown_one(run_cli, tmp_path):
    listed = run_cli("docs", cwd=tmp_path)
    assert listed.exit_code == 0
    assert "running           Running automations safely" in listed.stdout
    unknown = run_cli("docs", "runing", cwd=tmp_path)
    assert unknown.exit_code == 2 and "no page 'runing'" in unknown.stderr
