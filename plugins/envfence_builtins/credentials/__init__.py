"""Credentials and the services they open: Airtable, HousecallPro, webhook secrets, and the hygiene checks."""
