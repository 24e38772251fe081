"""Monitoring and rollout: what serves, how well, and what to do when it does not.

See docs/monitoring.md and docs/canary.md.
"""
