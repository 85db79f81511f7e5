"""Keeps a Prometheus or Alertmanager configuration in step with AlertAgent."""

__version__ = "0.1.0"
