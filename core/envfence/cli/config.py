"""``envfence config show``: the merged configuration, secrets masked, with provenance."""

from __future__ import annotations

import click

from ..errors import EXIT_FINDINGS
from ..models import MASK, Secret, mask
from . import State, pass_state
from .output import dumps, echo_findings, finding_dict, style


@click.group()
def config() -> None:
    """Inspect the configuration."""


def _shown(value) -> str:
    return MASK if isinstance(value, Secret) else value


def config_data(session) -> dict:
    """The configuration as JSON data; secret values are masked."""
    cfg = session.config
    entries = []
    for key in sorted(cfg.entries):
        e = cfg.entries[key]
        entries.append(
            {
                "key": key,
                "value": _shown(e.value),
                "secret": e.secret,
                "source": e.source,
                "overridden": [{"source": s, "value": mask(v)} for s, v in e.overridden],
                "prefix_environment": e.prefix_environment,
                "readable": e.prefix_environment in (None, cfg.environment),
            }
        )
    return {
        "environment": cfg.environment,
        "root": str(session.root.path),
        "values": {item["key"]: item["value"] for item in entries},
        "entries": entries,
        "layers": [
            {
                "source": layer.source,
                "precedence": layer.precedence,
                "exists": layer.exists,
                "keys": len(layer.values) if not layer.overlay else None,
                "path": str(layer.path) if layer.path else None,
            }
            for layer in cfg.layers
        ],
        "findings": [finding_dict(f) for f in session.load_findings],
    }


@config.command("show")
@click.option("--explain", is_flag=True, help="For each key, the layer that set it and the layers it overrode.")
@pass_state
def show(state: State, explain: bool) -> None:
    """Show the merged configuration with secrets masked."""
    session = state.session()
    data = config_data(session)
    findings = session.load_findings
    code = EXIT_FINDINGS if any(f.severity == "error" for f in findings) else 0
    if state.json:
        click.echo(dumps(data))
        click.get_current_context().exit(code)
    verbose = state.verbose(session) or explain
    if not verbose:
        for item in data["entries"]:
            click.echo(f"{item['key']}={item['value']}")
    else:
        click.echo(style(f"# {data['environment']} configuration ({data['root']})", bold=True))
        width = max((len(i["key"]) for i in data["entries"]), default=0)
        for item in data["entries"]:
            notes = [item["source"]]
            if item["secret"]:
                notes.append("secret")
            if not item["readable"]:
                notes.append(f"{item['prefix_environment']} credential, not read in {data['environment']}")
            click.echo(f"{item['key']:<{width}}  {item['value']}  " + style(f"({'; '.join(notes)})", dim=True))
            if explain:
                for old in reversed(item["overridden"]):
                    click.echo(f"{'':<{width}}    overrode {old['source']}: {old['value']}")
        if explain:
            click.echo(style("\n# layers, lowest precedence first", bold=True))
            for layer in data["layers"]:
                if layer["exists"]:
                    count = "overlay: known keys only" if layer["keys"] is None else f"{layer['keys']} keys"
                    click.echo(f"  {layer['precedence']:>3}  {layer['source']}  ({count})")
                else:
                    click.echo(f"  {layer['precedence']:>3}  {layer['source']}  (missing)")
    if findings:
        echo_findings(findings, err=True)
    click.get_current_context().exit(code)
