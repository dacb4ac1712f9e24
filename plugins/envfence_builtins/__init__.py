"""envfence's built-in plugins, one module per concern.

Each module is registered through the ``envfence`` entry-point group exactly as
a third-party plugin is, so ``envfence plugins`` lists them and
``-p no:NAME`` disables any of them.
"""
