"""The SQL of AdFame's tables, one module per table family; every caller reads and writes through these.

- ``requests``: generation requests and their candidates (API, workers, CLI)
- ``selections``: marketers' picks and the retrain milestones they complete
- ``deployments``: model versions' traffic weights and states, and monitoring metrics
- ``datasets``: curated snapshots, their clips and the ETL runs that made them, and the latest one's numbers
- ``api_keys``: per-tenant API keys, stored as digests (what a key is stays in ``inference.auth``)
- ``evaluations``: each registered version's evaluation against the champion, one row per model and metric
- ``monitoring``: quality and other metrics per version, drift reports, alerts, quality samples; and the
  read-only windows of requests monitoring judges
- ``dashboard``: the dashboard's read-side aggregations (counts, rates, percentiles) over the tables above
"""
