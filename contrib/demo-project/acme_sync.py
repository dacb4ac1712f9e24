"""The demo project's automation: load the day's jobs CSV into Airtable.

Declared in envfence.toml as ``import-jobs = "acme_sync:import_jobs"``. It
receives envfence's run context: the environment's configuration, its
credentials (audited), its own directory tree, a logger, and the dry-run flag.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

STATUSES = {"scheduled", "in progress", "done"}


def read_jobs(path: Path) -> list[dict]:
    """The CSV's rows as Airtable fields; a bad row stops the run with its line number."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            if row["status"] not in STATUSES:
                raise ValueError(f"{path.name}:{line}: status {row['status']!r} is not one of {sorted(STATUSES)}")
            rows.append(
                {
                    "Name": row["job"],
                    "Customer": row["customer"],
                    "Status": row["status"],
                    "Amount": float(row["amount"]),
                    "Paid": row["paid"].strip().lower() == "yes",
                }
            )
    return rows


def import_jobs(ctx) -> None:
    """Stage the sample CSV, upsert one Airtable record per row (keyed on Name), and file the CSV as processed.

    An upsert on a key field is safe to repeat: running the import twice, or
    a retry after a timeout, updates the same records instead of adding copies.
    """
    from pyairtable import Api

    source = Path(ctx.session.root.path, ctx.config.get("JOBS_CSV", "data/jobs.csv"))
    with ctx.step("read"):
        jobs = read_jobs(source)
    base, table_name = ctx.config["AIRTABLE_BASE_ID"], ctx.config["AIRTABLE_TABLE"]
    if ctx.dry_run:
        ctx.say(f"plan: stage {source.name} in {ctx.paths.stage('incoming')}")
        ctx.say(f"plan: upsert {len(jobs)} record(s) by Name in {table_name} of base {base} ({ctx.environment})")
        for job in jobs:
            ctx.say(f"  {job['Name']}  {job['Customer']:<20} {job['Status']:<12} {job['Amount']:>8.2f}")
        return

    incoming = ctx.paths.stage("incoming") / f"{ctx.run_id}-{source.name}"
    shutil.copyfile(source, incoming)
    working = ctx.paths.move(incoming, "processing")
    token = ctx.credential("AIRTABLE_API_KEY").reveal()
    endpoint = ctx.config.get("AIRTABLE_ENDPOINT_URL", "https://api.airtable.com")
    # envfence's retry decides what may be tried again; pyairtable's own would retry blindly.
    table = Api(token, endpoint_url=endpoint, timeout=(5, 30), retry_strategy=None).table(base, table_name)
    try:
        with ctx.step("upsert"):
            result = ctx.retry(
                table.batch_upsert, [{"fields": job} for job in jobs], key_fields=["Name"], typecast=True, idempotent=True
            )
    except Exception:
        ctx.paths.move(working, "failed")
        raise
    done = ctx.paths.move(working, "processed")
    # What the job did, kept with the run: `min_records_synced` in envfence.toml makes an empty import an incident.
    ctx.metric("records_synced", len(result["records"]), unit="records")
    ctx.say(
        f"upserted {len(result['records'])} record(s) in {table_name} of base {base} "
        f"({len(result['createdRecords'])} new, {len(result['updatedRecords'])} updated); {done.name} filed as processed"
    )
