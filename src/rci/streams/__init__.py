"""Kafka side of the system: topic contracts, clients, the worker and the shadow consumer."""
