"""``envfence emulate [NAME]``: list the fake services plugins register, or run one on 127.0.0.1."""

from __future__ import annotations

import click
from .examples import examples

from . import State, pass_state


@examples(
    "envfence emulate                      # list the fake services",
    "envfence emulate airtable --port 8765",
    "envfence emulate housecallpro --no-seed",
)
@click.command()
@click.argument("name", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--no-seed", is_flag=True, help="Start empty instead of with the demonstration tokens and data.")
@pass_state
def emulate(state: State, name: str | None, port: int, no_seed: bool) -> None:
    """List the registered fake services, or serve the one called NAME until interrupted.

    Without NAME, prints each emulator plugins register (the built-ins:
    ``airtable``, ``housecallpro``). With NAME, the first line printed is the
    URL: point the service's endpoint setting (AIRTABLE_ENDPOINT_URL,
    HOUSECALLPRO_API_URL) at it. Seeded with the demo project's tokens and
    data unless --no-seed. docs/fakes.md (`envfence docs fakes`) says how
    faithful each fake is.
    """
    from ..testing._server import registered_emulators

    found, errors = registered_emulators(state.plugins)
    for error in errors:
        click.echo(f"envfence: warning: {error}", err=True)
    if name is None:
        _list(state, found)
        return
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise click.UsageError(f"no emulator called {name!r} is registered (known: {known}); `envfence emulate` lists them")
    fake = found[name](seed=not no_seed, port=port)
    try:
        fake.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port, or 0 for a free one") from None
    if state.json:
        from .output import dumps

        click.echo(dumps({"service": name, "url": fake.url}).replace("\n", " "))
    else:
        click.echo(f"{fake.label} listening on {fake.url} (Ctrl-C to stop)")
    import sys
    import threading

    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


def _list(state: State, found: dict[str, type]) -> None:
    rows = [{"name": n, "label": getattr(cls, "label", n), "class": f"{cls.__module__}.{cls.__qualname__}"} for n, cls in sorted(found.items())]
    if state.json:
        from .output import dumps

        click.echo(dumps({"emulators": rows}))
        return
    if not rows:
        click.echo("No emulator is registered.")
        return
    for row in rows:
        click.echo(f"{row['name']:<14} {row['label']}  ({row['class']})")
