"""Thin extractors that land the users file and the jobs topic in Postgres' raw schema, as they arrived."""
