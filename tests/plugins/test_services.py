"""Service isolation: two environments never bind the same port."""

from __future__ import annotations

import envfence


def findings(root, code, **kwargs):
    return [f for f in envfence.open_session(root=root, environ={}, **kwargs).report.findings if f.code == code]


def test_two_environments_on_the_same_port_are_reported(make_project):
    root = make_project({".env.development": "WEBHOOK_PORT=8001\n", ".env.production": "WEBHOOK_PORT=8001\n"})
    [finding] = findings(root, "SERVICE_PORT_COLLISION")
    assert finding.severity == "error"
    assert "port 8001" in finding.message
    assert "development (WEBHOOK_PORT)" in finding.message and "production (WEBHOOK_PORT)" in finding.message
    assert findings(root, "SERVICE_PORT_COLLISION", env="production")  # seen from either side


def test_own_ports_per_environment_are_fine(make_project):
    root = make_project(
        {".env": "DEV_API_PORT=9001\nPROD_API_PORT=9002\n", ".env.development": "WEBHOOK_PORT=8001\n", ".env.production": "WEBHOOK_PORT=8002\n"}
    )
    assert findings(root, "SERVICE_PORT_COLLISION") == []


def test_prefixed_ports_collide_too(make_project):
    root = make_project({".env": "DEV_WEBHOOK_PORT=8001\nPROD_WEBHOOK_PORT=8001\n"})
    assert findings(root, "SERVICE_PORT_COLLISION")


def test_a_shared_port_in_the_common_file_collides(make_project):
    root = make_project({".env": "PORT=8080\n"})
    [finding] = findings(root, "SERVICE_PORT_COLLISION")
    assert "port 8080" in finding.message


def test_this_process_variables_belong_to_this_environment_only(make_project):
    root = make_project({".env.development": "WEBHOOK_PORT=8001\n", ".env.production": "WEBHOOK_PORT=8002\n"})
    session = envfence.open_session(root=root, environ={"WEBHOOK_PORT": "8002"})
    assert "SERVICE_PORT_COLLISION" in session.report.codes()  # development now asks for production's port
    assert "SERVICE_PORT_COLLISION" not in envfence.open_session(root=root, environ={}).report.codes()


def test_a_port_that_is_no_number_is_reported(make_project):
    root = make_project({".env.development": "WEBHOOK_PORT=eighty\n"})
    [finding] = findings(root, "SERVICE_PORT_INVALID")
    assert finding.key == "WEBHOOK_PORT" and "not a port number" in finding.message


def test_the_port_keys_can_be_named(make_project):
    root = make_project({".env": "LISTEN_ON=7000\nDEBUG_PORT=5678\n"}, settings='[services]\nports = ["LISTEN_ON"]\n')
    [finding] = findings(root, "SERVICE_PORT_COLLISION")
    assert "LISTEN_ON" in finding.message and "DEBUG_PORT" not in finding.message


def test_check_reports_the_collision_and_fails(make_project, run_cli):
    root = make_project({".env": "WEBHOOK_PORT=8001\n"})
    result = run_cli("check", cwd=root)
    assert result.exit_code == 1
    assert "SERVICE_PORT_COLLISION" in result.stdout and "port 8001" in result.stdout
