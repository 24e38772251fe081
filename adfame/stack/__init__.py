"""The local stack: real PostgreSQL, Kafka, SeaweedFS (S3), MLflow and Airflow servers, run as processes.

`adfame stack up|down|status|logs` is the front door (see ``manager``). No Docker
engine is needed; ``docker-compose.yaml`` mirrors the same services as containers.
"""


class StackError(RuntimeError):
    """A service could not be installed, started or reached; the message says which and where to look."""
