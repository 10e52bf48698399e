-- Second database on the same PostgreSQL server: MLflow's tracking store (Prefect uses POSTGRES_DB).
CREATE DATABASE mlflow OWNER xvlm;
