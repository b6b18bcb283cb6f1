"""Extract and load for the jobs ELT: land every source as it arrived in PostgreSQL's raw schema, for dbt.

One sub-package per role, imports running one way only (tests/architecture/test_import_direction.py):

    cli.py         the command line; with demo.py (`make demo`, one line per phase) the only modules that
                   import every room; build.py (`make build`) is one of its commands in a module of its own
    operations/    running and watching the pipeline: service, health, dbt runs under one lock, the build
                   that carries rule changes to old rows, status, audit, retention, reports
    landing/       the product's core flow: Kafka consumer, record decoding, raw sink, payload rules, file
                   loader, producer
    core/          what every room shares: settings, sources.yml, database access, the Kafka probe, one-line
                   errors, logging, progress bars
    local/         the embedded default (PostgreSQL + Tansu), reset and roles: used by cli, tests and bench
    sample_data/   the messy demo data generators: used by cli, tests and bench
    sql/           the raw layer's DDL and the roles, run by core/db.py and local/roles.py
"""
