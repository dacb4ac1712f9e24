"""Configuration layers and values: .env files, the process environment, declared settings, encryption, targets, and the value commands."""
