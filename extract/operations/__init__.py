"""Running and watching the pipeline: the service (metrics, health, dbt scheduler), status, the audit trail,
progress, answers and the HTML report, dbt's generated sources files. Imports `extract.landing` and `extract.core`."""
