"""The background service's parts, run by scheduler.py: child crawls, alerts, event logs."""
