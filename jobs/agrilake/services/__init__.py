"""Local servers for a laptop, the demo and the tests, on one shared lifecycle: the SeaweedFS object
store, a local Airflow, the SQL endpoint's state. Nothing in the pipeline imports them."""
