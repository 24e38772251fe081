-- Databases beside the application's own (POSTGRES_DB = adfame), created once when
-- docker-compose.yaml's postgres service initialises an empty data volume. The
-- image runs this file as POSTGRES_USER, who therefore owns both databases.
-- Names match adfame.settings.Settings (airflow_db, mlflow_db).
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
