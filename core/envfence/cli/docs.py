"""``envfence docs [PAGE]``: the user guide that ships with envfence, readable where there is no network.

A ``--help`` that says ``docs/running.md#exit-codes`` names a page of this
guide: the wheel carries the pages (``envfence/docs/*.md``), a checkout has
them in ``docs/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from .examples import examples


def docs_dir() -> Path | None:
    """Where the pages are: inside the installed package, else the checkout's ``docs/``; None when neither has them."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "docs", package.parent.parent / "docs"):
        if (candidate / "index.md").is_file():
            return candidate
    return None


def pages() -> dict[str, Path]:
    """Every page by name (``running`` for ``running.md``)."""
    where = docs_dir()
    return {} if where is None else {p.stem: p for p in sorted(where.glob("*.md"))}


def title(path: Path) -> str:
    """A page's first heading."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, as the docs site makes them (lower case, spaces to hyphens)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@examples(
    "envfence docs                          # the pages",
    "envfence docs running                  # one page, as text",
    "envfence docs running --path           # where it is, to open in an editor or browser",
)
@click.command("docs")
@click.argument("page", required=False)
@click.option("--path", "show_path", is_flag=True, help="Print the page's file name instead of the page.")
def docs(page: str | None, show_path: bool) -> None:
    """Show the user guide that ships with envfence, or one PAGE of it.

    A help text's docs/NAME.md#SECTION is page NAME here
    (`envfence docs NAME`), section SECTION.
    """
    found = pages()
    if not found:
        raise click.ClickException("this installation carries no user guide; reinstall envfence from its wheel or checkout")
    if page is None:
        width = max(map(len, found))
        for name, path in found.items():
            click.echo(f"{name:<{width}}  {title(path)}")
        return
    name = page.removeprefix("docs/").partition("#")[0].removesuffix(".md")
    if name not in found:
        raise click.UsageError(f"no page {page!r} (pages: {', '.join(found)})")
    click.echo(str(found[name]) if show_path else found[name].read_text(encoding="utf-8"), nl=show_path)
