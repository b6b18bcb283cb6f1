"""The shared core: settings from the environment, sources.yml, database connections and raw DDL, logging,
progress bars. Imports nothing else of `extract`."""
