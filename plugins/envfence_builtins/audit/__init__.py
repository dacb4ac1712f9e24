"""The audit trail: the environment's hash-chained record and its commands."""
