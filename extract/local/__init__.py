"""The local default: embedded PostgreSQL and the Tansu broker (`make up`/`down`), reset, least-privilege roles.
A leaf: imports `extract.core`; only the CLI, tests and bench import it."""
