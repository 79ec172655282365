"""docker-compose.yml wiring, checked without Docker: every rci container is configured only by
real settings, and those settings point at the services that exist in the file."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from rci.core.settings import Settings, env_name
from rci.streams.kafka import contract_topics

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = ("worker", "shadow")
_DEFAULT = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _resolve(value: object) -> str:
    """`${VAR:-default}` -> default, as compose does with VAR unset."""
    return _DEFAULT.sub(lambda m: m.group(1), str(value))


def _rci_env(compose: dict, service: str) -> dict[str, str]:
    env = compose["services"][service]["environment"]
    return {k: _resolve(v) for k, v in env.items() if k.startswith("RCI_")}


def _settings(compose: dict, service: str) -> Settings:
    fields = {name: value for name in Settings.model_fields if (value := _rci_env(compose, service).get(env_name(name)))}
    return Settings.model_validate(fields)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_rci_variable_is_a_setting(compose: dict, service: str) -> None:
    known = {env_name(name) for name in Settings.model_fields}
    unknown = set(_rci_env(compose, service)) - known
    assert not unknown, f"{service} sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_values_are_valid_settings(compose: dict, service: str) -> None:
    settings = _settings(compose, service)
    assert settings.object_store == "s3"
    assert settings.metrics_host == "0.0.0.0"  # scraped from outside the container


@pytest.mark.parametrize("service", APP_SERVICES)
def test_kafka_bootstrap_is_the_kafka_service(compose: dict, service: str) -> None:
    bootstrap = _settings(compose, service).kafka_bootstrap
    host, port = bootstrap.split(":")
    kafka = compose["services"][host]
    assert kafka["image"].startswith("apache/kafka:")
    assert f"PLAINTEXT://{host}:{port}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "broker,controller" == kafka["environment"]["KAFKA_PROCESS_ROLES"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_milvus_uri_is_milvus_standalone(compose: dict, service: str) -> None:
    uri = urlsplit(_settings(compose, service).milvus_uri)
    milvus = compose["services"][uri.hostname]
    assert milvus["image"].startswith("milvusdb/milvus:")
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert any(str(p).endswith(f":{uri.port}") for p in milvus["ports"])
    for dependency in milvus["depends_on"]:
        assert dependency in compose["services"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_object_store_is_minio_with_its_credentials(compose: dict, service: str) -> None:
    settings = _settings(compose, service)
    endpoint = urlsplit(settings.s3_endpoint_url)
    minio = compose["services"][endpoint.hostname]
    assert minio["image"].startswith("minio/minio:")
    assert endpoint.port == 9000
    env = minio["environment"]
    assert settings.s3_access_key_id.get_secret_value() == _resolve(env["MINIO_ROOT_USER"])
    assert settings.s3_secret_access_key.get_secret_value() == _resolve(env["MINIO_ROOT_PASSWORD"])


@pytest.mark.parametrize("service", APP_SERVICES)
def test_topics_and_buckets_are_created_for_the_settings(compose: dict, service: str) -> None:
    settings = _settings(compose, service)
    topics_script = compose["services"]["kafka-init"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", topics_script).group(1).split())
    assert created == set(contract_topics(settings))
    assert f"--partitions {settings.topic_partitions}" in topics_script

    buckets_script = compose["services"]["minio-init"]["command"][0]
    buckets = {word.removeprefix("rci/") for word in shlex.split(buckets_script.split("mc mb", 1)[1])[1:]}
    media_buckets = {urlsplit(p).hostname for p in settings.media_allowed_prefixes if p.startswith("s3://")}
    assert {settings.s3_bucket, *media_buckets} <= buckets


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_waits_for_healthy_infrastructure(compose: dict, service: str) -> None:
    depends = compose["services"][service]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["milvus"]["condition"] == "service_healthy"
    assert depends["kafka-init"]["condition"] == "service_completed_successfully"
    assert depends["minio-init"]["condition"] == "service_completed_successfully"
    for name in ("kafka", "milvus", "minio", "etcd", service):
        assert "healthcheck" in compose["services"][name], f"{name} has no healthcheck"


def test_app_commands_are_rci_commands(compose: dict) -> None:
    from rci.cli.main import app

    registered = {c.name for c in app.registered_commands}
    for service in APP_SERVICES:
        assert compose["services"][service]["build"] == "."
        [command] = compose["services"][service]["command"]
        assert command in registered, f"compose runs `rci {command}`, which the CLI does not have"


def test_dockerfile_copies_what_the_wheel_is_built_from() -> None:
    """No engine runs here to catch a broken image: check each COPY against the repository layout."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    sources = [source for line in copies for source in line if not source.startswith("--")]
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which the repository does not have"
    where = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["where"]
    for folder in where:  # the package source the wheel is built from
        assert folder in sources, f"Dockerfile does not copy {folder}/"
    for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("license-files", []):
        assert name in sources, f"Dockerfile does not copy {name}, a license file of the wheel"
    for not_in_image in ("tests", "benchmarks"):
        assert not_in_image not in sources, f"{not_in_image}/ is not part of the image"
    assert "requirements-runtime.lock" in dockerfile
    assert 'ENTRYPOINT ["rci"]' in dockerfile


@pytest.mark.parametrize("service", APP_SERVICES)
def test_health_checks_ask_ready_on_the_metrics_port(compose: dict, service: str) -> None:
    """/metrics answers before Kafka and the models are up; /ready only once the process serves."""
    test = compose["services"][service]["healthcheck"]["test"]
    [url] = re.findall(r"https?://[^'\" ]+", " ".join(test))
    parts = urlsplit(url)
    assert parts.path == "/ready", f"{service}'s health check asks {url}"
    assert parts.port == _settings(compose, service).metrics_port
    assert parts.hostname in {"127.0.0.1", "localhost"}


def test_the_shadow_consumer_is_optional(compose: dict) -> None:
    """Without a teacher in <MODELS_DIR>/matchlm/ the shadow exits 78: only `--profile shadow` starts it."""
    assert compose["services"]["shadow"]["profiles"] == ["shadow"]
    assert "profiles" not in compose["services"]["worker"]  # `docker compose up` scores


@pytest.mark.parametrize("service", APP_SERVICES)
def test_a_new_group_starts_at_the_earliest_record_in_this_dev_stack_only(compose: dict, service: str) -> None:
    assert Settings.model_fields["kafka_auto_offset_reset"].default == "latest"  # deployments elsewhere
    assert _settings(compose, service).kafka_auto_offset_reset == "earliest"
    raw = compose["services"][service]["environment"]["RCI_KAFKA_AUTO_OFFSET_RESET"]
    assert raw == "${RCI_KAFKA_AUTO_OFFSET_RESET:-earliest}", "the dev default must stay overridable"
    assert "development stack" in (ROOT / "docker-compose.yml").read_text()


def test_monitoring_profile_scrapes_every_app_service_with_the_repository_rules(compose: dict) -> None:
    prometheus, grafana = compose["services"]["prometheus"], compose["services"]["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]
    config_dir = next(v.split(":")[0] for v in prometheus["volumes"] if v.endswith(":/etc/prometheus:ro"))
    config = yaml.safe_load((ROOT / config_dir / "prometheus.yml").read_text())
    for rules in config["rule_files"]:
        assert (ROOT / config_dir / rules).is_file()
    scraped = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            scraped.update({name: sd["port"] for name in sd["names"]})
    assert set(scraped) == set(APP_SERVICES)
    for service, port in scraped.items():
        assert port == _settings(compose, service).metrics_port


def test_bind_mounts_exist_in_the_repository(compose: dict) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = _resolve(volume).split(":")[0]
            if source.startswith("./") and not source.startswith("./.rci/"):  # models: made by rci demo / report
                assert (ROOT / source).exists(), f"{name} mounts {source}, which the repository does not have"


def _pins(lock: Path) -> dict[str, str]:
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), re.M)}


def _installed_lock() -> Path:
    """The lock file the Dockerfile's `uv pip sync` installs."""
    [line] = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "uv pip sync" in line]
    return ROOT / line.split()[-1]


def test_the_image_installs_a_lock_without_test_tools() -> None:
    lock = _installed_lock()
    assert lock.name == "requirements-runtime.lock"
    pins = _pins(lock)
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    dev_names = {re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0].lower() for requirement in dev}
    runtime_needs = {"pyyaml"}  # a dev extra that a runtime dependency also needs (transformers)
    test_tools = (dev_names - runtime_needs) | {"pytest", "moto", "testcontainers", "hypothesis", "docker",
                                                 "pylint", "astroid", "import-linter", "responses", "werkzeug"}
    assert not test_tools & set(pins), f"{lock.name} holds test tools: {sorted(test_tools & set(pins))}"


def test_the_runtime_lock_pins_the_development_versions_of_every_runtime_dependency() -> None:
    """The image runs what the tests ran: same versions, a subset of requirements.lock."""
    runtime, development = _pins(_installed_lock()), _pins(ROOT / "requirements.lock")
    differing = {name: (version, development.get(name)) for name, version in runtime.items()
                 if development.get(name) != version}  # fmt: skip
    assert not differing, f"runtime lock differs from requirements.lock (runtime, dev): {differing}"
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, marker = requirement.partition(";")
        name = re.split(r"[<>=\[ ]", name.strip(), maxsplit=1)[0].lower()
        if "sys_platform != 'linux'" in marker:  # the image is linux x86_64
            continue
        assert name in runtime, f"the runtime lock lacks the dependency {name}"


def test_the_gpu_override_gives_each_app_service_a_gpu_and_demands_cuda(compose: dict) -> None:
    override = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())
    assert set(override["services"]) == set(APP_SERVICES) <= set(compose["services"])
    for service in APP_SERVICES:
        merged = {**_rci_env(compose, service), **override["services"][service]["environment"]}
        assert _settings({"services": {service: {"environment": merged}}}, service).device == "cuda"
        [device] = override["services"][service]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
