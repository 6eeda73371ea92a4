"""
Durable stores: subscribers, deliveries, attempts, endpoint health, idempotency keys and
API tokens, in memory, in an SQLite file (the service's default) or in PostgreSQL (when
many processes share the work).
"""
