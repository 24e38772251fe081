"""Custom Airflow operators, sensors and triggers that the DAGs in ``dags/`` wire together."""
