"""deploy/: the docker-compose file, its nginx and the Kubernetes manifest hold together (checked offline: with
`docker compose config` too when docker is installed). The topology itself runs in tests/test_scaling.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from emulator.cli.main import _parser
from emulator.config import env_name
from emulator.state.url import checked_state_url

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVE_VARIABLES = {option.variable for option in _parser()[1]["serve"].env_options}  # type: ignore[attr-defined]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def manifests() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()) if doc]


def test_compose_runs_replicas_on_one_redis_behind_a_load_balancer() -> None:
    services = compose()["services"]
    emulator, redis, lb = services["emulator"], services["redis"], services["lb"]
    assert emulator["deploy"]["replicas"] >= 2
    state = urlsplit(checked_state_url(emulator["environment"][env_name("state")]))
    assert state.hostname == "redis" and "redis-server" in redis["command"]
    assert set(emulator["environment"]) <= SERVE_VARIABLES
    assert emulator["environment"][env_name("control_token")]  # the control API is reached through nginx
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert lb["depends_on"]["emulator"]["condition"] == "service_healthy"
    assert (DEPLOY / emulator["build"] / "Dockerfile").is_file()


def test_nginx_passes_streams_unbuffered_to_every_replica() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.search(r"upstream emulator \{[^}]*server emulator:8000\b", conf)
    for directive in ("proxy_buffering off;", "proxy_http_version 1.1;", "proxy_pass http://emulator;"):
        assert directive in conf
    listen = re.search(r"listen (\d+);", conf)
    assert listen and f"{listen.group(1)}:" in compose()["services"]["lb"]["ports"][0]


def test_kubernetes_deployment_service_and_redis_agree() -> None:
    docs = manifests()
    by_kind: dict[tuple[str, str], dict[str, Any]] = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    app = by_kind[("Deployment", "tokenhub-emulator")]
    assert app["spec"]["replicas"] >= 2
    container = app["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) <= SERVE_VARIABLES
    state = urlsplit(checked_state_url(env[env_name("state")]["value"]))
    redis_service = by_kind[("Service", state.hostname or "")]
    assert redis_service["spec"]["ports"][0]["port"] == state.port
    redis = by_kind[("Deployment", state.hostname or "")]
    for deployment, service in ((app, by_kind[("Service", "tokenhub-emulator")]), (redis, redis_service)):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels == service["spec"]["selector"]
        ports = {p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert service["spec"]["ports"][0]["targetPort"] in ports
    secret = env[env_name("control_token")]["valueFrom"]["secretKeyRef"]
    assert secret["key"] in by_kind[("Secret", secret["name"])]["stringData"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_emulator/ready"


def test_docker_compose_accepts_the_file_where_it_is_installed() -> None:
    """Where `docker compose` runs (not on every machine that has docker), it reads the file as written."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        assert compose()["services"]["emulator"]  # no compose here: the checks above stand in for it
        return
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
