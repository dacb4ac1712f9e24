"""Operations: schedules, pauses, thresholds, health, alerts, metrics, reports, backups and status tracking."""
