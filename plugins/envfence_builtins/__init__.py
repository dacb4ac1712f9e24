"""envfence's built-in plugins, one module per concern.

Each module is registered through the ``envfence`` entry-point group exactly as
a third-party plugin is, so ``envfence plugins`` lists them and
``-p no:NAME`` disables any of them.
"""

#: The built-ins' registration order, the one place it is declared. pluggy calls
#: the last registered first, so a later plugin answers a firstresult hook
#: before an earlier one (``tryfirst``/``trylast`` aside), and third-party
#: plugins, registered after every built-in, before both.
ORDER = (
    "project_root",
    "environment_variable",
    "hostname",
    "dotenv_files",
    "process_environment",
    "directories",
    "encryption",
    "targets",
    "audit",
    "automations",
    "error_classes",
    "history",
    "logging",
    "services",
    "credentials",
    "secret_hygiene",
    "git_hygiene",
    "declared_settings",
    "airtable",
    "housecallpro",
    "webhooks",
    "airtable_status",
    "schedule",
    "maintenance",
    "thresholds",
    "health",
    "alerts",
    "metrics",
    "backup",
    "deploy",
    "report",
    "advise",
    "webhook_providers",
    "webhook_receiver",
    "store",
    "values",
)
