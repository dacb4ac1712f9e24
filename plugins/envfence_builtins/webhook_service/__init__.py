"""The webhook service: providers, signatures, the receiver, the durable queue and the worker."""
