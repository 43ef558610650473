"""The Helm chart deploy/helm/stafett, rendered by Helm's own engine and checked.

Helm itself renders and lints the chart (helm-python-sdk binds Helm's Go SDK; no helm binary
is to be had from the registries this project installs from), with the default values and
with values-grenland.yaml, each first checked against values.schema.json. Every manifest is
validated against the Kubernetes JSON schemas (kubernetes-validate, strict: an unknown field
fails) of the oldest Kubernetes the chart supports and of the newest bundled. The
dependencies (the NATS and CloudNativePG charts) cannot be fetched here, so what is checked
is what Stafett itself renders; `helm dependency build` brings them for an install.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate as kv
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "stafett"
CLUSTER_CONF = ROOT / "deploy" / "nats" / "cluster.conf"
SERVICES = ("case", "log", "consent", "notify")
PROCESSES = (*SERVICES, "portal")
OLDEST_KUBERNETES = "1.27.0"  # Chart.yaml kubeVersion
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
KEY_SETTINGS = ("STAFETT_KEK", "STAFETT_BLIND_INDEX_KEY", "STAFETT_OTHER_KEKS")

Manifest = dict[str, Any]


def _grenland() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values-grenland.yaml").read_text())
    return values


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base`` as Helm merges values: maps key by key, anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both else value
    return merged


VALUE_SETS = {
    "default": None,
    "grenland": _grenland(),
    # Grenland while its KEK is changed, scraped by pod annotations instead.
    "key-change": _merged(
        _grenland(),
        {
            "secrets": {"otherKeks": {"name": "stafett-other-keks", "key": "other-keks"}},
            "metrics": {"scrape": "annotations"},
        },
    ),
}


def _render(values: dict[str, Any] | None, *, upgrade: bool = False) -> list[Manifest]:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(
            values,
            name="stafett",
            namespace="stafett",
            revision=2 if upgrade else 1,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    return [
        doc
        for name, text in sorted(rendered.items())
        if name.endswith(".yaml")  # not NOTES.txt
        for doc in yaml.safe_load_all(text)
        if doc  # a template that renders nothing
    ]


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def manifests(value_set: str) -> list[Manifest]:
    return _render(VALUE_SETS[value_set])


def _values(value_set: str) -> dict[str, Any]:
    """The values a set renders with: the chart's defaults under the set's own."""
    with helm.Chart.load(CHART) as chart:
        defaults: dict[str, Any] = chart.values
    return _merged(defaults, VALUE_SETS[value_set] or {})


def _named(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _containers(manifest: Manifest) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    return containers


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _workloads(manifests: list[Manifest]) -> Iterator[Manifest]:
    yield from (m for m in manifests if m["kind"] in ("Deployment", "Job"))


# --- Helm: schema, lint, render --------------------------------------------------------------


@pytest.mark.parametrize("values", sorted(VALUE_SETS))
def test_helm_lints_the_chart_clean_but_for_the_absent_dependencies(values: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[values], strict=True, namespace="stafett")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert [m["error"] for m in problems] == [
        "chart directory is missing these dependencies: nats,cloudnative-pg"
    ]


def test_the_values_schema_refuses_what_the_chart_cannot_run() -> None:
    bad: list[dict[str, Any]] = [
        {"services": {"case": {"replicas": 2}}},  # one instance per service
        {"portal": {"publicUrl": "http://stafett.example"}},  # production needs https
        {"region": {"admins": ["no-issuer"]}},
        {"natsConnection": {"streamReplicas": 0}},
        {"postgres": {"sslMode": "allow"}},
        {"secrets": {"kek": {"name": "Not A Name", "key": "kek"}}},
        {"unknownSetting": True},
        {"secrets": {"blindIndexKey": {"name": "Not A Name", "key": "blind-index-key"}}},
        {"secrets": {"blindIndexKey": {"name": "stafett-blind-index-key", "key": ""}}},
        # keys that only unwrap without the blind index key fixed: every index would change
        {"secrets": {"otherKeks": {"name": "stafett-other-keks", "key": "other-keks"}}},
        {"metrics": {"scrape": "prometheus"}},
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        # scraped behind NetworkPolicies that name no monitoring namespace
        {"metrics": {"scrape": "annotations"}},
        {"networkPolicy": {"monitoringPods": {"app": ["prometheus"]}}},
    ]
    with helm.Chart.load(CHART) as chart:
        for values in bad:
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(values)


def test_the_chart_renders_the_same_on_an_upgrade() -> None:
    install = _render(VALUE_SETS["grenland"])
    upgrade = _render(VALUE_SETS["grenland"], upgrade=True)
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in upgrade)
    # Only the stream setup's Job carries the revision in its name.
    assert sorted((m["kind"], m["metadata"]["name"]) for m in install) == [
        (k, n.replace("stream-setup-2", "stream-setup-1")) for k, n in kinds
    ]


# --- Kubernetes schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kv.latest_version()])
def test_every_manifest_is_valid_kubernetes(manifests: list[Manifest], version: str) -> None:
    checked = 0
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            continue  # CloudNativePG's own resources: checked below, by what they say
        kv.validate(manifest, version, strict=True)
        checked += 1
    assert checked >= 20


def test_the_kubernetes_schemas_refuse_a_wrong_manifest(manifests: list[Manifest]) -> None:
    deployment = json.loads(json.dumps(_named(manifests, "Deployment")["stafett-case"]))
    _containers(deployment)[0]["livenesProbe"] = {"httpGet": {"path": "/healthz"}}
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, kv.latest_version(), strict=True)


def test_stafett_makes_no_secret_and_writes_no_secret_value(manifests: list[Manifest]) -> None:
    assert not [m for m in manifests if m["kind"] == "Secret"]
    secret_like = re.compile(r"PASSWORD|_KEKS?$|_KEY$|_OIDC$")
    for workload in _workloads(manifests):
        for container in _containers(workload):
            for name, entry in _env(container).items():
                if secret_like.search(name):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (workload, name)
                    assert "value" not in entry


# --- The processes ----------------------------------------------------------------------------


def test_every_stafett_variable_is_a_setting_a_process_reads(
    manifests: list[Manifest], known_settings: frozenset[str]
) -> None:
    for workload in _workloads(manifests):
        for container in _containers(workload):
            names = {n for n in _env(container) if n.startswith("STAFETT_")}
            assert names <= known_settings, (workload["metadata"]["name"], names - known_settings)


def test_each_process_runs_unprivileged_with_probes_and_resources(
    manifests: list[Manifest],
) -> None:
    deployments = _named(manifests, "Deployment")
    assert sorted(deployments) == sorted(f"stafett-{p}" for p in PROCESSES)
    for workload in _workloads(manifests):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
    for deployment in deployments.values():
        (container,) = _containers(deployment)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert _env(container)["STAFETT_ENV"]["value"] == "production"


def test_only_the_services_hold_the_kek_and_only_the_log_its_signing_key(
    manifests: list[Manifest],
) -> None:
    for workload in _workloads(manifests):
        name = workload["metadata"]["name"]
        (container,) = _containers(workload)
        env = _env(container)
        holds_keys = workload["kind"] == "Deployment" and name != "stafett-portal"
        assert ("STAFETT_KEK" in env) == holds_keys, name
        assert not (set(KEY_SETTINGS) & set(env)) or holds_keys, name
        assert ("STAFETT_LOG_SIGNING_KEY_FILE" in env) == (name == "stafett-log"), name
    log = _named(manifests, "Deployment")["stafett-log"]
    volumes = {v["name"]: v for v in log["spec"]["template"]["spec"]["volumes"]}
    assert volumes["log-signing"]["secret"]["secretName"] == "stafett-log-signing-key"
    # Owned by root, group fsGroup: the service (uid 10001, group 10001) reads it, no one else.
    assert volumes["log-signing"]["secret"]["defaultMode"] == 0o440
    assert log["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_the_key_settings_come_from_their_secrets_to_the_services_only(
    manifests: list[Manifest], value_set: str
) -> None:
    secrets = _values(value_set)["secrets"]
    deployments = _named(manifests, "Deployment")
    wanted = {
        setting: {"name": ref["name"], "key": ref["key"]}
        for setting, ref in zip(
            KEY_SETTINGS,
            (secrets["kek"], secrets["blindIndexKey"], secrets["otherKeks"]),
            strict=True,
        )
        if ref["name"]  # an unnamed optional Secret: the setting is not passed at all
    }
    assert "STAFETT_KEK" in wanted
    for service in SERVICES:
        env = _env(_containers(deployments[f"stafett-{service}"])[0])
        # Never `optional`: a Secret named but missing stops the pod instead of starting it
        # with the blind index derived from the KEK, or without a key it needs.
        assert {s: env[s]["valueFrom"]["secretKeyRef"] for s in KEY_SETTINGS if s in env} == wanted
    portal = _env(_containers(deployments["stafett-portal"])[0])
    assert not set(KEY_SETTINGS) & set(portal)


def test_a_key_change_passes_both_keys_and_none_is_passed_by_default() -> None:
    def passed(value_set: str) -> set[str]:
        case = _named(_render(VALUE_SETS[value_set]), "Deployment")["stafett-case"]
        return set(KEY_SETTINGS) & set(_env(_containers(case)[0]))

    assert passed("default") == {"STAFETT_KEK"}
    assert passed("grenland") == {"STAFETT_KEK", "STAFETT_BLIND_INDEX_KEY"}
    assert passed("key-change") == set(KEY_SETTINGS)


def test_each_service_has_its_own_nats_user_and_database(manifests: list[Manifest]) -> None:
    deployments = _named(manifests, "Deployment")
    for service in SERVICES:
        env = _env(_containers(deployments[f"stafett-{service}"])[0])
        assert env["STAFETT_NATS_USER"]["value"] == service
        assert env["STAFETT_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == service
        assert env["STAFETT_NATS_URL"]["value"] == "tls://stafett-nats:4222"
        assert env["STAFETT_STREAM_REPLICAS"]["value"] == "3"
        assert env["STAFETT_CREATE_STREAM"]["value"] == "false"
        url = env[f"STAFETT_{service.upper()}_DATABASE_URL"]["value"]
        assert url == (
            f"postgresql://stafett_{service}:$(STAFETT_{service.upper()}_DB_PASSWORD)"
            f"@stafett-pg-rw:5432/stafett_{service}"
        )
        assert env["PGSSLMODE"]["value"] == "verify-full"
    portal = _env(_containers(deployments["stafett-portal"])[0])
    assert not {n for n in portal if n.startswith(("STAFETT_NATS", "PG"))}
    assert portal["STAFETT_PORTAL_CONSENT_URL"]["value"] == "http://stafett-consent:8080"


def test_migrations_run_before_an_upgrade_without_nats_or_keys(manifests: list[Manifest]) -> None:
    jobs = _named(manifests, "Job")
    for service in SERVICES:
        job = jobs[f"stafett-{service}-migrate"]
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
        (container,) = _containers(job)
        assert container["args"] == ["migrate"]
        assert container["image"].rsplit("/", 1)[-1].startswith(f"stafett-{service}:")
        env = _env(container)
        assert f"STAFETT_{service.upper()}_DATABASE_URL" in env
        assert not {n for n in env if n.startswith(("STAFETT_NATS", "STAFETT_KEK"))}
    (setup,) = (j for n, j in jobs.items() if n.startswith("stafett-stream-setup-"))
    env = _env(_containers(setup)[0])
    assert env["STAFETT_NATS_USER"]["value"] == "admin"
    assert env["STAFETT_STREAM_REPLICAS"]["value"] == "3"


# --- Only the portal is reachable -------------------------------------------------------------


def _policy_for(policies: dict[str, Manifest], labels: dict[str, str]) -> list[Manifest]:
    def selects(policy: Manifest) -> bool:
        wanted = policy["spec"]["podSelector"].get("matchLabels", {})
        return all(labels.get(k) == v for k, v in wanted.items())

    return [p for p in policies.values() if selects(p)]


def test_only_the_portal_is_reachable_from_outside(
    manifests: list[Manifest], value_set: str
) -> None:
    values = _values(value_set)
    scraped = bool(values["metrics"]["scrape"])
    assert all(s["spec"]["type"] == "ClusterIP" for s in _named(manifests, "Service").values())
    ingresses = list(_named(manifests, "Ingress").values())
    backends = {
        path["backend"]["service"]["name"]
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"stafett-portal"}

    policies = _named(manifests, "NetworkPolicy")
    for workload in _workloads(manifests):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        (policy,) = _policy_for(policies, labels)
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        component = labels["app.kubernetes.io/component"]
        ingress = policy["spec"].get("ingress", [])
        if component in SERVICES:
            rule, *scrape = ingress
            (peer,) = rule["from"]
            assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "portal"
            # /metrics: from Prometheus's namespaces (and pods) only, and only when scraped.
            assert len(scrape) == scraped
            for rule in scrape:
                assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
                assert rule["from"] == _monitoring_peers(values)
        elif component != "portal":
            assert ingress == []  # jobs take no connections


def _monitoring_peers(values: dict[str, Any]) -> list[dict[str, Any]]:
    policy = values["networkPolicy"]
    pods = {"podSelector": {"matchLabels": policy["monitoringPods"]}}
    peers = [
        {"namespaceSelector": {"matchLabels": labels}, **(pods if policy["monitoringPods"] else {})}
        for labels in policy["monitoringFrom"]
    ]
    assert all(p["namespaceSelector"]["matchLabels"] for p in peers)  # never "any namespace"
    return peers


def test_each_service_reaches_nats_and_postgres_and_the_portal_neither(
    manifests: list[Manifest],
) -> None:
    policies = _named(manifests, "NetworkPolicy")

    def egress_ports(name: str) -> set[int]:
        return {p["port"] for rule in policies[name]["spec"]["egress"] for p in rule["ports"]}

    for service in SERVICES:
        assert {53, 443, 4222, 5432} <= egress_ports(f"stafett-{service}")
    assert egress_ports("stafett-portal") == {53, 443, 8080}
    assert egress_ports("stafett-stream-setup") == {53, 4222}
    assert egress_ports("stafett-migrate") == {53, 5432}
    nats = policies["stafett-nats"]["spec"]["ingress"][0]
    clients = nats["from"][0]["podSelector"]["matchExpressions"]
    components = next(e["values"] for e in clients if e["key"] == "app.kubernetes.io/component")
    assert sorted(components) == sorted([*SERVICES, "stream-setup"])


# --- Metrics ---------------------------------------------------------------------------------


def _selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    expressions = selector.get("matchExpressions", [])
    assert all(e["operator"] == "In" for e in expressions)
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        labels.get(e["key"]) in e["values"] for e in expressions
    )


def test_prometheus_scrapes_the_services_and_never_the_portal(
    manifests: list[Manifest], value_set: str
) -> None:
    values = _values(value_set)
    scrape = values["metrics"]["scrape"]
    monitors = list(_named(manifests, "ServiceMonitor").values())
    annotated = {
        d["metadata"]["name"]
        for d in _named(manifests, "Deployment").values()
        if "prometheus.io/scrape" in d["spec"]["template"]["metadata"].get("annotations", {})
    }
    services = {f"stafett-{s}" for s in SERVICES}
    how = {"default": "", "grenland": "serviceMonitor", "key-change": "annotations"}
    assert scrape == how[value_set]
    assert len(monitors) == (scrape == "serviceMonitor")
    assert annotated == (services if scrape == "annotations" else set())
    for name in annotated:
        deployment = _named(manifests, "Deployment")[name]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        (port,) = _containers(deployment)[0]["ports"]
        assert annotations == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port["containerPort"]),
            "prometheus.io/path": "/metrics",
        }
    for monitor in monitors:
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["stafett"]}
        chosen = {
            name: service
            for name, service in _named(manifests, "Service").items()
            if _selected(spec["selector"], service["metadata"]["labels"])
        }
        assert set(chosen) == services  # the portal serves no /metrics
        (endpoint,) = spec["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["scheme"] == "http"
        for service in chosen.values():
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        # The Prometheus Operator finds it by the labels the region names.
        labels = values["metrics"]["serviceMonitor"]["labels"]
        assert labels.items() <= monitor["metadata"]["labels"].items()


def test_unscraped_services_take_nothing_from_the_monitoring_namespace() -> None:
    values = _merged(_grenland(), {"metrics": {"scrape": ""}})
    policies = _named(_render(values), "NetworkPolicy")
    for service in SERVICES:
        (only,) = policies[f"stafett-{service}"]["spec"]["ingress"]
        assert "namespaceSelector" not in only["from"][0]
    # NATS's monitoring port stays open to it.
    scrape = policies["stafett-nats"]["spec"]["ingress"][-1]
    assert scrape["ports"] == [{"port": 8222, "protocol": "TCP"}]
    assert scrape["from"] == _monitoring_peers(_merged(_values("grenland"), values))


# --- NATS and PostgreSQL ----------------------------------------------------------------------


def test_nats_gets_the_accounts_and_permissions_of_cluster_conf(manifests: list[Manifest]) -> None:
    accounts = _named(manifests, "ConfigMap")["stafett-nats-accounts"]["data"]["accounts.conf"]
    text = CLUSTER_CONF.read_text()
    assert accounts.strip() == text[text.index("\naccounts {") :].strip()
    for user in ("admin", "case", "log", "consent", "notify", "system"):
        assert f"password: $STAFETT_{user.upper()}_NATS_PASSWORD" in accounts


def test_the_nats_chart_values_name_what_stafett_renders(manifests: list[Manifest]) -> None:
    with helm.Chart.load(CHART) as chart:
        values = chart.values
    nats = values["nats"]
    assert nats["config"]["cluster"]["replicas"] == 3
    assert nats["config"]["jetstream"]["enabled"] is True
    assert nats["config"]["nats"]["tls"]["enabled"] is True
    (volume,) = (p["value"] for p in nats["podTemplate"]["patch"])
    assert volume["configMap"]["name"] in _named(manifests, "ConfigMap")
    (mount,) = (p["value"] for p in nats["container"]["patch"])
    include = nats["config"]["merge"]["zz$include"]
    assert (Path("/etc/nats-config") / include).resolve() == Path(mount["mountPath"]) / (
        "accounts.conf"
    )
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in nats["container"]["env"].values()}
    assert secrets == {values["secrets"]["nats"]["name"]}
    assert nats["tlsCA"]["secretName"] == values["natsConnection"]["tls"]["caSecret"]


def test_postgres_gives_each_role_its_own_database_only(manifests: list[Manifest]) -> None:
    (cluster,) = _named(manifests, "Cluster").values()
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["enableSuperuserAccess"] is False
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert sorted(roles) == sorted(f"stafett_{s}" for s in SERVICES)
    for service in SERVICES:
        assert roles[f"stafett_{service}"]["passwordSecret"]["name"] == f"stafett-db-{service}"
    hba = cluster["spec"]["postgresql"]["pg_hba"]
    assert hba[-1] == "host all " + ",".join(f"stafett_{s}" for s in SERVICES) + " all reject"
    assert sorted(hba[:-1]) == sorted(
        f"hostssl stafett_{s} stafett_{s} all scram-sha-256" for s in SERVICES
    )
    databases = {d["spec"]["name"]: d["spec"] for d in _named(manifests, "Database").values()}
    assert sorted(databases) == sorted(f"stafett_{s}" for s in SERVICES)
    for name, spec in databases.items():
        assert spec["owner"] == name
        assert spec["cluster"]["name"] == cluster["metadata"]["name"]
        assert spec["databaseReclaimPolicy"] == "retain"
