"""The Acme plugin's tests use envfence's test kit, opted into here."""

pytest_plugins = ["envfence.testing.pytest_plugin"]
