"""A run in three parts, each a module with one job.

- :mod:`~envfence.runs.decide`: may it run? The ``pre_run_safety`` guards and the override policy.
- :mod:`~envfence.runs.execute`: run it. A function or a command, under the
  environment's lock, with this environment's variables only.
- :mod:`~envfence.runs.record`: keep what happened. Failures classified and
  logged (``on_error``), the outcome, the audit events, ``on_run_start`` /
  ``on_run_finish`` (run history and status trackers).

:class:`envfence.runner.Runner` calls them in that order.
"""
