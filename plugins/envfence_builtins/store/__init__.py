"""The shared PostgreSQL store: history, locks, audit and the webhook queue for several machines."""
