"""The deployment files, rendered and checked offline: the ECS task definition, service, target group and
listener rule against AWS's own API model (botocore's service definitions, the shapes the AWS CLI validates
`--cli-input-json` with), the Kubernetes manifests against the Kubernetes OpenAPI schemas
(kubernetes-validate), and the compose stack's wiring."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["deploy_render"] = module
    spec.loader.exec_module(module)
    return module


render = _render_module()


def rendered(kind: str) -> dict[str, str]:
    values = render.read_values(DEPLOY / kind / "values.example.env")
    return render.render(kind, values)


# ------------------------------------------------------------------------------------------------ ECS
def _validate_aws(service: str, operation: str, params: dict[str, Any]) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), report.generate_report()


def test_ecs_files_are_valid_aws_api_input() -> None:
    files = {name: json.loads(text) for name, text in rendered("ecs").items()}
    _validate_aws("ecs", "RegisterTaskDefinition", files["task-definition.json"])
    _validate_aws("ecs", "CreateService", files["service.json"])
    _validate_aws("elbv2", "CreateTargetGroup", files["target-group.json"])
    _validate_aws("elbv2", "ModifyTargetGroupAttributes", files["target-group-attributes.json"])
    _validate_aws("elbv2", "CreateRule", files["listener-rule.json"])


def test_ecs_task_runs_the_image_with_secrets_by_reference_logs_and_readiness() -> None:
    files = {name: json.loads(text) for name, text in rendered("ecs").items()}
    task = files["task-definition.json"]
    (api,) = task["containerDefinitions"]
    assert api["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-api:1.0.0"
    assert api["command"] == ["api"]
    assert api["logConfiguration"]["logDriver"] == "awslogs"
    # Secrets only as Secrets Manager / SSM references, never as values.
    secret_names = {s["name"] for s in api["secrets"]}
    assert {
        "DB_PASSWORD",
        "REDIS_PASSWORD",
        "JWT_SECRET",
        "ADMIN_MFA_SECRET",
        "SECURITY_PEPPER",
    } <= secret_names
    assert all(s["valueFrom"].startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:")) for s in api["secrets"])
    assert not secret_names & {e["name"] for e in api["environment"]}
    env = {e["name"]: e["value"] for e in api["environment"]}
    assert json.loads(env["TRUSTED_PROXIES"]) == ["10.0.0.0/16"]  # a JSON value survived the JSON string
    assert api["stopTimeout"] > int(env["API_SHUTDOWN_GRACE_SECONDS"])
    assert files["service.json"]["desiredCount"] == 4
    assert files["target-group.json"]["HealthCheckPath"] == "/health/ready"
    rule = files["listener-rule.json"]
    assert rule["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/v1/ml/*"]
    delay = {a["Key"]: a["Value"] for a in files["target-group-attributes.json"]["Attributes"]}
    # The ALB stops routing to a task before ECS sends it SIGTERM, and the task drains within stopTimeout.
    assert int(delay["deregistration_delay.timeout_seconds"]) < api["stopTimeout"]


def test_render_names_a_missing_value_and_refuses_bad_json() -> None:
    values = render.read_values(DEPLOY / "ecs" / "values.example.env")
    del values["IMAGE"]
    with pytest.raises(render.RenderError, match="no value for IMAGE"):
        render.render("ecs", values)
    values = render.read_values(DEPLOY / "ecs" / "values.example.env") | {"SUBNETS_JSON": "[subnet-1"}
    with pytest.raises(render.RenderError, match="SUBNETS_JSON must be JSON"):
        render.render("ecs", values)
    # A value with quotes stays one JSON string (escaped), it cannot inject fields.
    values = render.read_values(DEPLOY / "ecs" / "values.example.env") | {"DB_NAME": 'x", "admin": "1'}
    task = json.loads(render.render("ecs", values)["task-definition.json"])
    env = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
    assert env["DB_NAME"] == 'x", "admin": "1'


def test_render_cli_writes_the_files(tmp_path: Path) -> None:
    assert render.main(["k8s", str(DEPLOY / "k8s" / "values.example.env"), str(tmp_path)]) == 0
    assert (tmp_path / "ticketguard.yaml").exists()
    assert render.main(["nope", str(DEPLOY / "k8s" / "values.example.env"), str(tmp_path)]) == 2


# ------------------------------------------------------------------------------------------------ Kubernetes
def k8s_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered("k8s")["ticketguard.yaml"]) if d]


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    import kubernetes_validate

    docs = k8s_docs()
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Job",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_kubernetes_api_probes_resources_scaling_and_secret_references() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in k8s_docs()}
    api = docs[("Deployment", "ticketguard-api")]["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["resources"]["requests"]["cpu"]
    assert api["securityContext"]["runAsNonRoot"] is True
    assert api["terminationGracePeriodSeconds"] > 20 + 5  # API_SHUTDOWN_GRACE_SECONDS + preStop
    for kind, name in (
        ("Deployment", "ticketguard-api"),
        ("Deployment", "ticketguard-worker"),
        ("Job", "ticketguard-migrate"),
    ):
        (c,) = docs[(kind, name)]["spec"]["template"]["spec"]["containers"]
        assert {"secretRef": {"name": "ticketguard-secrets"}} in c["envFrom"]
        assert "env" not in c  # no secret value written in a manifest
    hpa = docs[("HorizontalPodAutoscaler", "ticketguard-api")]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] == 4
    pdb = docs[("PodDisruptionBudget", "ticketguard-api")]["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"]
    worker = docs[("Deployment", "ticketguard-worker")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]
    assert "CronJob" not in {kind for kind, _ in docs}


# ------------------------------------------------------------------------------------------------ compose
def test_compose_trusts_only_nginx_and_stops_slower_than_the_drain() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    nginx_ip = services["nginx"]["networks"]["internal"]["ipv4_address"]
    assert json.loads(services["api"]["environment"]["TRUSTED_PROXIES"]) == [nginx_ip]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker", "dashboard", "nginx"}
    for name in ("api", "worker", "dashboard"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert int(services["api"]["stop_grace_period"].rstrip("s")) > 20
    assert all(p.startswith("127.0.0.1:") for p in services["nginx"]["ports"])  # nothing else published
    assert "healthcheck" in services["postgres"]
    assert services["api"]["env_file"] == ".env"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/.env" in ignored
