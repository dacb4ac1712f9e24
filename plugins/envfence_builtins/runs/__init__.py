"""What a run needs and leaves: automations, error classes, history, logging, service ports, the environment's tree."""
