"""Operations: per-request phase statistics, the access log line, Prometheus
metrics, and health and readiness.

Nothing here touches a request's outcome: the gateway measures, then logs and
counts what it did.
"""
