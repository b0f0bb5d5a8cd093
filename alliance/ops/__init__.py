"""Operations: health and readiness probes, structured logs with a request id, Prometheus
metrics. The views are in views.py, the checks in services.py, logging in logs.py and the
metrics in metrics.py."""
