"""The product's flow from source to raw: Kafka consumer and raw sink, payload rules, file loader, producer,
and the observer hooks operations attach to. Imports only `extract.core`."""
