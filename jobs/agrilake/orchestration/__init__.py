"""What the Airflow DAG files share (Wiring, the stage task factory, Assets, cluster submit) and the
`agrilake dags-test` runner."""
