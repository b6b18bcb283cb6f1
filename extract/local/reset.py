"""Start over: drop every layer in Postgres and delete the topics (the demo does this to be repeatable)."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.errors import UnknownTopicOrPartitionError

from extract.core import db
from extract.core.settings import Settings

log = logging.getLogger(__name__)


def reset_everything(settings: Settings) -> None:
    with db.connect(settings, autocommit=True) as conn:
        for schema in ("marts", "snapshots", "staging", "raw"):
            conn.execute(f"drop schema if exists {schema} cascade")  # fixed names, no input reaches here
    topics = [source.topic for source in settings.sources().kafka_sources()]
    admin = KafkaAdminClient(client_id="jobs-elt-admin", **settings.kafka_client_config())
    try:
        existing = [topic for topic in topics if topic in set(admin.list_topics())]
        if existing:
            admin.delete_topics(existing)
    except UnknownTopicOrPartitionError:
        pass
    finally:
        admin.close()
    log.info("dropped schemas raw, staging, marts and topics %s", ", ".join(topics))
