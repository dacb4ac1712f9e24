"""``envfence emulate airtable|housecallpro``: run a fake service on 127.0.0.1."""

from __future__ import annotations

import click

from . import State, pass_state

SERVICES = ("airtable", "housecallpro")


@click.command()
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--no-seed", is_flag=True, help="Start empty instead of with the demo project's tokens and data.")
@pass_state
def emulate(state: State, service: str, port: int, no_seed: bool) -> None:
    """Serve a fake Airtable or HousecallPro on 127.0.0.1 until interrupted.

    The first line printed is the URL: point AIRTABLE_ENDPOINT_URL or
    HOUSECALLPRO_API_URL at it. Seeded with the demo project's tokens,
    bases and records unless --no-seed.
    """
    from ..testing import emulator

    fake = emulator(service)(seed=not no_seed, port=port)
    try:
        fake.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); pick another --port, or 0 for a free one") from None
    if state.json:
        from .output import dumps

        click.echo(dumps({"service": service, "url": fake.url}).replace("\n", " "))
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
