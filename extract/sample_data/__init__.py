"""Deterministic messy demo data: users, jobs, payments and the service catalogue, written as the producers
and files of a real feed would. A leaf: imports `extract.core`; only the CLI, tests and bench import it."""
