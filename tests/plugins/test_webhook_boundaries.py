"""The two webhook plugins meet through ``register_webhook_providers`` only: either can be disabled on its own.

``webhook_providers`` declares the hook and registers the built-in providers;
``webhook_receiver`` calls it (through ``provider_hooks``, the hook's contract
module) for its routes, its commands and ``webhooks verify``. Neither imports
the other's modules, so ``-p no:NAME`` leaves the disabled one unloaded even on
the commands that use the other, and what needed it says so.
"""

from __future__ import annotations

from fresh_process import envfence_in_new_process

# No [automations]: with one, `check` judges its runs, and a disabled plugin is imported to learn whether
# it was a guard (core's disabled_guards), which would hide what this file checks.
SETTINGS = """
[webhooks.routes."/housecallpro"]
provider = "housecallpro"
secret = "HOUSECALLPRO_WEBHOOK_SECRET"
automation = "import-job"
"""

FILES = {
    ".env.development": "WEBHOOK_PORT=18011\nDEV_HOUSECALLPRO_WEBHOOK_SECRET=dev-secret-0a1b2c3d4e5f6a7b8c9d0e1f\n",
}


def _loaded(root, *args: str) -> list[str]:
    """The webhook_service modules a fresh process holds after ``envfence ARGS`` in ``root``."""
    _, _, _, modules = envfence_in_new_process(root, *args, env={"PATH": "/usr/bin:/bin", "HOME": str(root), "ENVFENCE_ROOT": str(root),
                                                                 "ENVFENCE_PLUGIN_CACHE": "off"})
    return sorted(m for m in modules if m.startswith("envfence_builtins.webhook_service."))


def test_check_without_the_providers_plugin_loads_none_of_its_modules(make_project):
    root = make_project(FILES, settings=SETTINGS)
    loaded = _loaded(root, "-p", "no:webhook_providers", "--json", "check")
    assert "envfence_builtins.webhook_service.webhook_receiver" in loaded  # the receiver judged its routes
    assert "envfence_builtins.webhook_service.webhook_providers" not in loaded
    with_both = _loaded(root, "--json", "check")
    assert "envfence_builtins.webhook_service.webhook_providers" in with_both  # the probe sees a loaded plugin


def test_without_the_receiver_its_commands_are_gone_and_its_modules_unloaded(make_project, run_cli):
    root = make_project(FILES, settings=SETTINGS)
    for command in (["serve"], ["worker", "--once"], ["queue", "list"], ["webhooks", "verify", "x.http", "--route", "/x"]):
        result = run_cli("-p", "no:webhook_receiver", *command, cwd=root)
        assert result.exit_code == 2 and f"No such command '{command[0]}'" in result.stderr, result.stderr
    loaded = _loaded(root, "-p", "no:webhook_receiver", "--json", "check")
    assert not [m for m in loaded if m.rsplit(".", 1)[1].startswith("webhook_receiver")], loaded


def test_webhooks_verify_without_the_providers_plugin_names_it(make_project, run_cli, tmp_path):
    root = make_project(FILES, settings=SETTINGS)
    capture = tmp_path / "delivery.http"
    capture.write_bytes(b"POST /housecallpro HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}")
    result = run_cli("-p", "no:webhook_providers", "webhooks", "verify", str(capture), "--route", "/housecallpro", cwd=root)
    assert result.exit_code == 4, result.stderr
    assert "'register_webhook_providers' is not available: its plugin 'webhook_providers' is disabled" in result.stderr
    assert "dev-secret-0a1b2c3d4e5f6a7b8c9d0e1f" not in result.stdout + result.stderr
