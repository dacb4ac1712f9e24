"""Which environment, on which host: the project root, the ENVIRONMENT variable, the host name."""
