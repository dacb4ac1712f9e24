"""Test support for envfence and its plugins.

Nothing here is imported by ``import envfence`` or the command line.

- ``envfence.testing.project``: :class:`~envfence.testing.project.Project`, a
  throwaway project to write files into and run the command line in.
- ``envfence.testing.pytest_plugin``: the pytest fixtures, loaded
  automatically wherever envfence is installed (the ``pytest11`` entry point).
"""
