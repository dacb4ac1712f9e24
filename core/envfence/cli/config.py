"""``envfence config show``: the merged configuration, secrets masked, with provenance."""

from __future__ import annotations

import click

from ..errors import EXIT_FINDINGS
from ..models import Secret, mask
from . import State, pass_state
from .examples import examples
from .output import Pairs, dotenv_value, dumps, echo_findings, echo_json, finding_dict, plural, style


@click.group()
def config() -> None:
    """Inspect, compare, snapshot and roll back the configuration."""


def config_data(session, lazy: bool = False) -> dict:
    """The configuration as JSON data; secret values are masked, and secrets inside other values.

    With ``lazy``, ``values`` and ``entries`` are produced while they are
    written (:func:`~envfence.cli.output.echo_json`): at 100,000 keys, the
    whole document would take several times the memory of the configuration.
    """
    cfg = session.config
    keys = sorted(cfg.entries)
    shown = _shown(session)
    entries = map(_entry_maker(session, shown), keys)
    values = ((k, shown(cfg.entries[k].value)) for k in keys)
    if not lazy:
        entries = list(entries)
        values = {item["key"]: item["value"] for item in entries}
    return {
        "environment": cfg.environment,
        "root": str(session.root.path),
        "values": values if not lazy else Pairs(values),
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


def _entry_maker(session, shown):
    """A function from a key to its entry as JSON data, values shown through ``shown``."""
    cfg = session.config

    def entry(key: str) -> dict:
        e = cfg.entries[key]
        return {
            "key": key,
            "value": shown(e.value),
            "secret": e.secret,
            "source": e.source,
            "overridden": [{"source": s, "value": shown(v)} for s, v in e.overridden],
            "prefix_environment": e.prefix_environment,
            "readable": e.prefix_environment in (None, cfg.environment),
        }

    return entry


def _shown(session):
    """How a value is shown: a secret as the mask, any other value with the secrets inside it masked."""
    redact = session.redactor()
    return lambda value: mask(value) if isinstance(value, Secret) else redact(value)


@examples(
    "envfence config show",
    "envfence config show --explain        # which layer set each key, and what it overrode",
    "envfence --env production --json config show",
)
@config.command("show")
@click.option("--explain", is_flag=True, help="For each key, the layer that set it and the layers it overrode.")
@pass_state
def show(state: State, explain: bool) -> None:
    """Show the merged configuration with secrets masked."""
    session = state.session()
    session.config_read("config show", session.config.entries)
    findings = session.load_findings
    code = EXIT_FINDINGS if any(f.severity == "error" for f in findings) else 0
    if state.json:
        echo_json(config_data(session, lazy=True))
        click.get_current_context().exit(code)
    verbose = state.verbose(session) or explain
    if not verbose:
        shown, entries = _shown(session), session.config.entries
        for key in sorted(entries):
            click.echo(f"{key}={shown(entries[key].value)}")
    else:
        data = config_data(session)
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
                    count = "overlay: known keys only" if layer["keys"] is None else plural(layer["keys"], "key")
                    click.echo(f"  {layer['precedence']:>3}  {layer['source']}  ({count})")
                else:
                    click.echo(f"  {layer['precedence']:>3}  {layer['source']}  (missing)")
    if findings:
        echo_findings(findings, err=True)
    click.get_current_context().exit(code)


def drift(a, b) -> dict:
    """Keys one environment has and the other lacks, compared under plain names."""
    view_a, view_b = a.config.environment_view(), b.config.environment_view()
    differ = sorted(
        k for k in set(view_a) & set(view_b)
        if not isinstance(view_a[k], Secret) and view_a[k] != view_b[k]
    )
    return {
        "environments": [a.environment.name, b.environment.name],
        "only_in": {
            a.environment.name: sorted(set(view_a) - set(view_b)),
            b.environment.name: sorted(set(view_b) - set(view_a)),
        },
        "differ": differ,
        "same": sorted(k for k in set(view_a) & set(view_b) if k not in differ),
    }


@examples(
    "envfence config diff development production",
)
@config.command("diff")
@click.argument("first")
@click.argument("second")
@pass_state
def diff(state: State, first: str, second: str) -> None:
    """Configuration drift between two environments (exit 1 when keys are missing in one).

    Keys are compared under their plain names (DEV_X and PROD_X are both X).
    Values that differ are listed by key only; a secret's value is never compared
    or shown here.
    """
    a, b = state.session_for(first), state.session_for(second)
    data = drift(a, b)
    missing = any(data["only_in"].values())
    if state.json:
        click.echo(dumps(data))
    else:
        for env, keys in data["only_in"].items():
            if keys:
                click.echo(style(f"only in {env}:", bold=True))
                for key in keys:
                    click.echo(f"  {key}")
        if data["differ"]:
            click.echo(style("different values:", bold=True) + " " + ", ".join(data["differ"]))
        if not missing:
            click.echo(f"no drift: {first} and {second} define the same {plural(len(data['same']) + len(data['differ']), 'key')}")
    click.get_current_context().exit(EXIT_FINDINGS if missing else 0)


@examples(
    "envfence config template > .env.example",
)
@config.command("template")
@pass_state
def template(state: State) -> None:
    """Print a .env template: every known key, secrets left empty.

    Declared settings come first with their documentation; a credential gets
    one line per environment prefix. Use it to set up a new machine or to keep
    a committed `.env.example` current.
    """
    session = state.session()
    envs, naming = list(session.settings.environments), session.settings.naming
    shown = _shown(session)
    lines = ["# .env template from `envfence config template`: secret values are left empty"]
    records = []
    done: set[str] = set()
    # An automation only makes the settings it names known; the setting's owner says what it is.
    specs = sorted(session.settings_specs, key=lambda s: (s.name, s.plugin == "automations"))
    for spec in specs:
        keys = [naming.key(env, spec.name) for env in envs] if spec.credential else [spec.name]
        if all(key in done for key in keys):
            continue
        notes = [n for n in (spec.type if spec.type not in (None, "str") else "", "credential" if spec.credential else "",
                             "secret" if spec.secret else "") if n]
        if spec.required_in:
            notes.append("required in " + ", ".join(spec.required_in))
        lines.append(f"# {spec.name}" + (f": {spec.doc}" if spec.doc else "") + (f" ({'; '.join(notes)})" if notes else ""))
        value = "" if spec.secret or spec.default is None else shown(spec.default)
        for key in keys:
            lines.append(f"{key}={dotenv_value(value)}")
            done.add(key)
        records.append({"name": spec.name, "keys": keys, "description": spec.doc, "type": spec.type or "str",
                        "secret": spec.secret, "credential": spec.credential, "required_in": list(spec.required_in),
                        "default": value or None, "plugin": spec.plugin})
    rest = [k for k in sorted(session.config.entries) if k not in done]
    if rest:
        lines.append("# other keys of this project")
        for key in rest:
            entry = session.config.entries[key]
            lines.append(f"{key}={'' if entry.secret else dotenv_value(shown(entry.value))}")
            records.append({"name": key, "keys": [key], "description": "", "type": None, "secret": bool(entry.secret),
                            "credential": False, "required_in": [], "default": None if entry.secret else shown(entry.value),
                            "plugin": None})
    if state.json:
        click.echo(dumps({"environment": session.environment.name, "settings": records}))
        return
    click.echo("\n".join(lines))


@examples(
    "envfence config schema > envfence.schema.json",
)
@config.command("schema")
@pass_state
def schema(state: State) -> None:
    """Print the JSON Schema of envfence.toml, for editors that complete and check TOML.

    Save it beside envfence.toml and start that file with
    `#:schema ./envfence.schema.json` (taplo, VS Code's Even Better TOML).
    """
    from ..schema import render

    # The loaded plugins' tables: one disabled with -p no:NAME adds none.
    click.echo(render(state.plugins.declare_tables().flat()), nl=False)


@examples(
    "envfence config snapshot --note \"before rotating the Airtable token\"",
)
@config.command("snapshot")
@click.option("--note", default="", help="Why this snapshot was taken (recorded in the manifest and the audit trail).")
@pass_state
def snapshot(state: State, note: str) -> None:
    """Save this environment's configuration files into its backups tree."""
    from .. import snapshots

    taken = snapshots.take(state.session(), note=note)
    saved = sorted(source for source, digest in taken.files.items() if digest)
    if state.json:
        click.echo(dumps({"id": taken.id, "path": taken.path, "files": taken.files, "note": taken.note}))
    else:
        click.echo(f"snapshot {taken.id}: {', '.join(saved) or 'no files'} saved in {taken.path}")


@examples(
    "envfence config rollback --list",
    "envfence config rollback 20261206T101500123456Z --dry-run",
    "envfence --env production config rollback 20261206T101500123456Z --reason \"bad token\"",
)
@config.command("rollback")
@click.argument("snapshot_id", required=False)
@click.option("--list", "list_only", is_flag=True, help="List this environment's snapshots, newest first.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--reason", help="Why (required in a strict profile such as production; recorded).")
@pass_state
def rollback(state: State, snapshot_id: str | None, list_only: bool, dry_run: bool, reason: str | None) -> None:
    """Put a snapshot's configuration files back (the current ones are snapshotted first)."""
    from .. import snapshots
    from ..errors import UsageError

    session = state.session()
    if list_only or not snapshot_id:
        found = snapshots.listing(session)
        if state.json:
            click.echo(dumps([{"id": s.id, "created": s.created, "note": s.note, "files": s.files} for s in found]))
        elif not found:
            click.echo(f"no snapshots of the {session.environment.name} configuration yet (`envfence config snapshot`)")
        for s in [] if state.json else found:
            click.echo(f"{s.id}  {s.created}  {', '.join(k for k, v in s.files.items() if v)}" + (f"  # {s.note}" if s.note else ""))
        if not list_only and not found:
            click.get_current_context().exit(EXIT_FINDINGS)
        return
    target = snapshots.find(session, snapshot_id)
    if dry_run:
        changes = snapshots.plan(session, target)
        if state.json:
            click.echo(dumps({"id": target.id, "dry_run": True, "changes": changes}))
        else:
            for c in changes:
                click.echo(f"would {c['action']} {c['source']}")
            if not changes:
                click.echo(f"nothing to do: the files already match {target.id}")
        return
    if session.profile.strict and not reason:
        raise UsageError(
            f"rolling back the {session.environment.name} configuration needs --reason in a strict profile",
            f'envfence --env {session.environment.name} config rollback {target.id} --reason "why"',
        )
    before, changes = snapshots.rollback(session, target, reason)
    if state.json:
        click.echo(dumps({"id": target.id, "saved_as": before.id, "changes": changes}))
    else:
        for c in changes:
            click.echo(f"{c['action']}d {c['source']}")  # removed, created, restored
        click.echo(f"rolled back to {target.id}; the previous files are snapshot {before.id}")


from . import config_changes  # noqa: E402,F401  (adds `config migrate` and `config history` to the group)
