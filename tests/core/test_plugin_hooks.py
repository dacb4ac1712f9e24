"""Plugins own the hooks they offer: declared through ``register_hookspecs``, gone with their plugin."""

from __future__ import annotations

import json

import pytest

from envfence import hookimpl
from envfence.hookcalls import HookNotDeclared, HookResult, OfferedHooks
from envfence.hookspecs import OnError, failure_policy, hookspec


class GreetingSpecs:
    @failure_policy(OnError.FINDING)
    @hookspec
    def greeting(self, name: str) -> str | None:
        """A greeting for ``name``.

        :param name: who is greeted.
        """


class GreetingHooks(OfferedHooks):
    declared_by = "greeter"
    specs = GreetingSpecs

    def greeting(self, *, name: str) -> HookResult[str]:
        return self._call("greeting", name=name)


class Greeter:
    """Offers the ``greeting`` hook."""

    @hookimpl
    def register_hookspecs(self, register):
        register(GreetingSpecs)


class Polite:
    @hookimpl(optionalhook=True)
    def greeting(self, name):
        return f"good morning, {name}"


class Rude:
    @hookimpl  # not optional: without the greeter it implements a hook nothing declares
    def greeting(self, name):
        return f"what, {name}?"


class Broken:
    @hookimpl(optionalhook=True)
    def greeting(self, name):
        raise RuntimeError("no voice today")


def test_hook_register_hookspecs_a_plugin_declares_a_hook_that_another_implements(envfence_project, envfence_plugin):
    envfence_plugin(Polite(), "polite")  # registered before the greeter: order does not matter
    envfence_plugin(Greeter(), "greeter")
    envfence_plugin(Broken(), "broken")
    session = envfence_project.session()
    result = GreetingHooks(session.plugins).greeting(name="Ada")
    assert result.values == ("good morning, Ada",)
    [finding] = result.findings()  # the declared policy applies: FINDING names the plugin that raised
    assert finding.plugin == "broken" and "no voice today" in finding.message
    listing = json.loads(envfence_project.run("--json", "plugins").stdout)
    assert {r["name"]: r["offers"] for r in listing}["greeter"] == ["greeting"]
    hooks = json.loads(envfence_project.run("--json", "plugins", "--hooks").stdout)
    [row] = [r for r in hooks if r["hook"] == "greeting"]
    assert row["declared_by"] == "greeter" and [p["plugin"] for p in row["plugins"]] == ["broken", "polite"]


def test_calling_a_hook_whose_plugin_is_disabled_is_a_clear_error(envfence_project, envfence_plugin):
    envfence_plugin(Greeter(), "greeter")
    envfence_plugin(Polite(), "polite")
    envfence_plugin(Rude(), "rude")
    session = envfence_project.session(disabled_plugins=["greeter"])
    with pytest.raises(HookNotDeclared) as raised:
        GreetingHooks(session.plugins).greeting(name="Ada")
    assert "the hook 'greeting' is not available: its plugin 'greeter' is disabled" in raised.value.message
    assert "drop -p no:greeter" in raised.value.hint
    records = session.plugins.records
    assert records["polite"].status == "loaded"  # optionalhook: it waits for a declaring plugin
    assert records["rude"].status == "failed" and "implements unknown hook(s): greeting" in records["rude"].reason


def test_a_plugin_cannot_declare_a_hook_twice_or_without_a_failure_policy(envfence_project, envfence_plugin):
    class Again:
        @hookimpl
        def register_hookspecs(self, register):
            register(GreetingSpecs)

    class NoPolicy:
        @hookspec
        def farewell(self, name: str) -> str | None:
            """Say goodbye."""

    class Careless:
        @hookimpl
        def register_hookspecs(self, register):
            register(NoPolicy)

    envfence_plugin(Greeter(), "greeter")
    envfence_plugin(Again(), "again")
    envfence_plugin(Careless(), "careless")
    result = envfence_project.run("plugins")
    assert result.exit_code == 0
    records = envfence_project.session().plugins.records
    assert records["greeter"].status == "loaded"
    assert records["again"].status == "failed" and "hook greeting is declared already (by greeter)" in records["again"].reason
    assert records["careless"].status == "failed" and "farewell declares no failure_policy" in records["careless"].reason


def test_without_the_plugin_that_offers_webhook_providers_check_says_so(make_project, run_cli):
    settings = '[webhooks.routes."/hcp"]\nprovider = "housecallpro"\nsecret = "HCP_WEBHOOK_SECRET"\nautomation = "sync"\n'
    root = make_project({".env": "DEV_HCP_WEBHOOK_SECRET=s3cret-value-1234567890\n"}, settings=settings)
    result = run_cli("-p", "no:webhook_providers", "--json", "check", cwd=root)
    findings = json.loads(result.stdout)["findings"]
    [route] = [f for f in findings if f["code"] == "WEBHOOK_ROUTE_INVALID"]
    assert "'register_webhook_providers' is not available: its plugin 'webhook_providers' is disabled" in route["message"]
    assert "drop -p no:webhook_providers" in route["remediation"]


def test_the_store_stays_loaded_without_the_plugins_whose_hooks_it_implements(run_cli, make_project):
    root = make_project()
    result = run_cli("-p", "no:alerts", "-p", "no:audit", "-p", "no:webhook_receiver", "--json", "plugins", cwd=root)
    store = {r["name"]: r for r in json.loads(result.stdout)}["store"]
    assert store["status"] == "loaded", store
    assert {"hold_state", "verify_audit_store", "open_webhook_queue"}.isdisjoint(store["hooks"])  # nothing declares them


def test_the_core_hookspecs_hold_only_the_pipelines_hooks():
    from envfence import hookspecs
    from envfence.cli.plugins import hookspec_names

    core = set(hookspec_names(hookspecs))
    assert {"alert", "register_webhook_providers", "verify_audit_store", "hold_state", "open_webhook_queue"}.isdisjoint(core)
    import inspect

    assert "envfence_builtins" not in inspect.getsource(hookspecs)
