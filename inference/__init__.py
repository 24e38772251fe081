"""Pipeline loading, the Kafka worker, the REST API and the selection page.

Serving never imports Airflow or training code.
"""
