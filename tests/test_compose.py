"""docker-compose.yml, checked statically against the code (no Docker engine needed).

Every command parses with the parser of the program it runs; every `EIBERT_*` variable is one that program
reads; every port and URL names a port the target really listens on; healthy-dependencies have healthchecks;
Prometheus scrapes every service with /metrics; the Grafana dashboard only asks for metrics the code registers;
every image builds from its own target of service/Dockerfile (tests/test_dockerfile.py checks what each target
installs: the edge never installs torch).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from model_store.shipped import PREVIOUS_BUNDLE, SHIPPED_BUNDLE
from tests.dockerfile import DOCKERFILE, TARGETS, default_command, stages

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
MONITORING = ROOT / "loadtests" / "monitoring"
PROMETHEUS = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
DASHBOARD = json.loads((MONITORING / "grafana" / "dashboards" / "eibert.json").read_text())
DATASOURCES = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
# ports of third-party images, which take no port flag here
IMAGE_PORTS = {"redis": 6379, "prometheus": 9090, "grafana": 3000}
PINNED_KEY_WRAPPER = '--cloud-public-key "$(cat /secrets/signing-key.pub)"'


def argv(name: str) -> list[str]:
    """The service's command as it runs, with what its entrypoint wrapper appends."""
    svc = SERVICES[name]
    cmd = svc.get("command")
    assert isinstance(cmd, list) and all(isinstance(a, str) for a in cmd), f"{name}: command must be a list of str"
    wrapper = " ".join(svc.get("entrypoint") or [])
    if PINNED_KEY_WRAPPER in wrapper.replace("$$", "$"):
        cmd = [*cmd, "--cloud-public-key", "MCowBQYDK2VwAyEA"]
    return cmd


def program(name: str) -> str:
    cmd = SERVICES[name].get("command") or []
    if not cmd:
        return "image"
    if cmd[0] == "eibert":
        return f"eibert {cmd[1]}"
    if cmd[:2] == ["python", "-m"]:
        return cmd[2]
    return cmd[0]


def services_running(prog: str) -> list[str]:
    return [n for n in SERVICES if program(n) == prog]


def flag(cmd: list[str], name: str) -> str | None:
    for i, a in enumerate(cmd):
        if a == name:
            return cmd[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def env(name: str) -> dict[str, str]:
    e = SERVICES[name].get("environment") or {}
    assert isinstance(e, dict), f"{name}: use the mapping form of environment"
    return {k: str(v) for k, v in e.items()}


def listen_port(name: str) -> int:
    """The port the service's process binds, from its flags, its environment, or the program's default."""
    from service.edge.config import EdgeSettings

    cmd = SERVICES[name].get("command") or []
    prog = program(name)
    if prog == "eibert edge":
        return int(
            flag(cmd, "--port") or env(name).get("EIBERT_EDGE_PORT") or EdgeSettings.model_fields["port"].default
        )
    if prog == "eibert cloud":
        from eibert.cli import build_parser

        return int(build_parser().parse_args(cmd[1:]).port)  # the flag always wins over EIBERT_CLOUD_PORT
    if prog == "locust":
        return int(flag(cmd, "--web-port") or 8089)
    if name in IMAGE_PORTS:
        return IMAGE_PORTS[name]
    raise AssertionError(f"{name} publishes ports, but this test does not know what it listens on")


# ---------------------------------------------------------------------------------------------------- commands


def _eibert_parse(cmd: list[str]) -> argparse.Namespace:
    from eibert.cli import build_parser

    try:
        return build_parser().parse_args(cmd[1:])
    except SystemExit as exc:
        raise AssertionError(f"eibert does not accept {cmd}") from exc


@pytest.mark.parametrize("name", [n for n in SERVICES if program(n).startswith("eibert ")])
def test_eibert_commands_parse(name: str) -> None:
    from eibert import cli

    cmd = argv(name)
    pending = getattr(cli, "_PENDING", {})
    if cmd[1] in pending:
        pytest.skip(f"`eibert {cmd[1]}` is still a placeholder: {pending[cmd[1]]}")
    args = _eibert_parse(cmd)
    assert args.command == cmd[1]
    if cmd[1] == "simulate":
        assert args.cloud == "http://cloud:8000" and args.cloud_public_key
        try:
            from simulators.faults import parse_faults
        except ImportError:  # pragma: no cover - the simulator keeps its fault parser elsewhere
            return
        parse_faults(args.faults)


@pytest.mark.parametrize("name", [n for n in SERVICES if program(n).startswith("loadtests.")])
def test_python_module_commands_parse(name: str) -> None:
    import importlib

    cmd = argv(name)
    module = importlib.import_module(cmd[2])
    try:
        module.build_parser().parse_args(cmd[3:])
    except SystemExit as exc:
        raise AssertionError(f"{cmd[2]} does not accept {cmd[3:]}") from exc


def test_locust_command_parses_and_lists_the_users() -> None:
    for name in services_running("locust"):
        cmd = argv(name)
        out = subprocess.run(
            [sys.executable, "-m", "locust", *cmd[1:], "--list"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert {"EdgeUser", "CloudDeviceUser"} <= {line.strip() for line in out.stdout.splitlines()}
        assert SERVICES[name].get("profiles") == ["load"]


def test_every_program_is_known_and_the_stack_is_complete() -> None:
    progs = {n: program(n) for n in SERVICES}
    assert progs["redis"] == "redis-server"
    assert set(services_running("eibert cloud")) == {"cloud"}
    assert set(services_running("eibert edge")) == {"edge-1", "edge-2"}
    assert services_running("eibert simulate") == ["simulator"]
    assert services_running("loadtests.publish") == ["publisher"]
    assert services_running("loadtests.stack_secrets") == ["init"]
    assert flag(SERVICES["cloud"]["command"], "--store") == "redis://redis:6379/0"
    assert flag(SERVICES["cloud"]["command"], "--host") == "0.0.0.0"
    for edge in ("edge-1", "edge-2"):
        cmd = SERVICES[edge]["command"]
        assert flag(cmd, "--host") == "0.0.0.0" and flag(cmd, "--cloud") == "http://cloud:8000"
        assert (ROOT / flag(cmd, "--bundle") / "manifest.json").is_file()
    sim = SERVICES["simulator"]["command"]
    assert [sim[i + 1] for i, a in enumerate(sim) if a == "--edge"] == ["http://edge-1:8080", "http://edge-2:8080"]


# ---------------------------------------------------------------------------------------------------- env vars


def _sim_env_names() -> set[str]:
    path = ROOT / "simulators" / "cli_args.py"
    return set(re.findall(r"\"(EIBERT_SIM_[A-Z_]+)\"", path.read_text())) if path.exists() else set()


def _load_env_names() -> set[str]:
    from loadtests import payloads, texts

    return {
        texts.SAMPLE_ENV,
        payloads.EDGE_URL_ENV,
        payloads.CLOUD_URL_ENV,
        payloads.WAIT_ENV,
        payloads.ENROLMENT_TOKEN_FILE_ENV,
    }


def _field_check(settings_cls: type, field_name: str, value: str) -> None:
    field = settings_cls.model_fields[field_name]
    if "${" in value:  # interpolated from the user's shell: the value is theirs
        return
    try:
        typ = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
        TypeAdapter(typ).validate_python(value)
    except ValidationError as exc:
        raise AssertionError(f"{settings_cls.__name__}.{field_name} refuses {value!r}: {exc}") from exc


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_eibert_env_var_is_read_by_the_service(name: str) -> None:
    from model_store.data.paths import DATA_ENV
    from service.cloud.config import Settings as CloudSettings
    from service.edge.config import EdgeSettings

    prog = program(name)
    for var, value in env(name).items():
        if not var.startswith("EIBERT_"):
            continue
        if var.startswith("EIBERT_EDGE_"):
            assert prog == "eibert edge", f"{name} runs {prog}, which ignores {var}"
            field = var.removeprefix("EIBERT_EDGE_").lower()
            assert field in EdgeSettings.model_fields, f"{var} is not an EdgeSettings field"
            _field_check(EdgeSettings, field, value)
        elif var.startswith("EIBERT_CLOUD_"):
            assert prog == "eibert cloud", f"{name} runs {prog}, which ignores {var}"
            field = var.removeprefix("EIBERT_CLOUD_").lower()
            assert field in CloudSettings.model_fields, f"{var} is not a cloud Settings field"
            _field_check(CloudSettings, field, value)
        elif var == "EIBERT_ADMIN_TOKEN_FILE":
            assert prog == "eibert cloud", f"{name} runs {prog}, which ignores {var}"
            assert var in CloudSettings.model_fields["admin_token_file"].validation_alias.choices
            assert value.startswith("/secrets/")
        elif var == "EIBERT_ADMIN_TOKEN":
            assert prog in ("eibert cloud", "loadtests.stack_secrets", "loadtests.publish", "eibert publish")
            assert value.startswith("${"), "a token is never written into the compose file"
        elif var.startswith("EIBERT_SIM_"):
            assert prog == "eibert simulate" and var in _sim_env_names(), f"{var} is not read by the simulator"
        elif var.startswith("EIBERT_LOAD_"):
            assert prog == "locust" and var in _load_env_names(), f"{var} is not read by the locustfile"
        elif var == DATA_ENV:
            assert prog in ("locust", "eibert simulate"), f"{name} reads no data sets"
        else:
            raise AssertionError(f"{name}: no code reads {var}")


def test_no_secret_is_written_into_the_compose_file() -> None:
    secretish = re.compile(r"TOKEN|PASSWORD|SECRET|(?<!PUBLIC)_KEY$")
    for name in SERVICES:
        for var, value in env(name).items():
            if secretish.search(var) and not (var.endswith("_FILE") and value.startswith("/secrets/")):
                assert value.startswith("${"), f"{name}: {var} has a literal value"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env("grafana")
    for edge in services_running("eibert edge"):
        assert env(edge)["EIBERT_EDGE_CLOUD_PUBLIC_KEY_FILE"].startswith("/secrets/")
    assert env("cloud")["EIBERT_CLOUD_SIGNING_KEY_FILE"].startswith("/secrets/")


# ---------------------------------------------------------------------------------------------------- ports, urls


@pytest.mark.parametrize("name", [n for n in SERVICES if SERVICES[n].get("ports")])
def test_published_ports_are_what_the_service_listens_on(name: str) -> None:
    for spec in SERVICES[name]["ports"]:
        parts = str(spec).split(":")
        assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: publish on 127.0.0.1 only ({spec})"
        assert int(parts[2]) == listen_port(name), f"{name}: {spec} does not reach port {listen_port(name)}"


def _urls_in(obj: Any) -> list[tuple[str, int]]:
    text = json.dumps(obj)
    return [(h, int(p)) for h, p in re.findall(r"(?:https?|redis)://([a-z0-9-]+):(\d+)", text)]


def test_every_url_names_a_service_on_its_port() -> None:
    found = []
    for svc in SERVICES.values():
        for host, port in _urls_in({k: svc.get(k) for k in ("command", "environment", "entrypoint")}):
            if host == "127.0.0.1":
                continue
            found.append((host, port))
    for host, port in _urls_in(DATASOURCES):
        found.append((host, port))
    assert ("cloud", 8000) in found and ("edge-2", 8080) in found and ("redis", 6379) in found
    for host, port in found:
        assert host in SERVICES, f"{host} is not a service"
        assert port == listen_port(host), f"{host}:{port}, but {host} listens on {listen_port(host)}"


@pytest.mark.parametrize("name", [n for n in SERVICES if SERVICES[n].get("healthcheck")])
def test_healthchecks_probe_the_right_port(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] == "CMD"
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", " ".join(test))]
    if program(name).startswith("eibert "):
        assert ports == [listen_port(name)]
        assert "/readyz" in " ".join(test)
        assert test[1] == "python"  # slim images have no curl
    elif ports:
        assert ports == [listen_port(name)]


# ---------------------------------------------------------------------------------------------------- depends_on


def test_depends_on_conditions_are_satisfiable() -> None:
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use depends_on with conditions"
        for dep, spec in deps.items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            cond = spec["condition"]
            if cond == "service_healthy":
                assert SERVICES[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no healthcheck"
            elif cond == "service_completed_successfully":
                assert SERVICES[dep].get("restart") == "no" and not SERVICES[dep].get("ports"), f"{dep} is not one-shot"
            else:
                assert cond == "service_started"
            assert not SERVICES[dep].get("profiles") or SERVICES[dep].get("profiles") == svc.get("profiles")
    for name in ("cloud", "edge-1", "edge-2", "redis"):
        assert SERVICES[name].get("healthcheck"), f"{name} needs a healthcheck"


# ---------------------------------------------------------------------------------------------------- monitoring


def test_prometheus_scrapes_every_service_with_metrics() -> None:
    targets = {t for job in PROMETHEUS["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for name in services_running("eibert edge") + services_running("eibert cloud"):
        assert f"{name}:{listen_port(name)}" in targets, f"Prometheus does not scrape {name}"
    for target in targets:
        host, port = target.split(":")
        if host != "127.0.0.1":
            assert host in SERVICES and int(port) == listen_port(host), target
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in PROMETHEUS["scrape_configs"])
    mounts = " ".join(SERVICES["prometheus"]["volumes"])
    assert "./loadtests/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml" in mounts


def _exported_names() -> set[str]:
    """Every sample name the edge and cloud registries can expose (families expanded by type)."""
    from service.cloud.metrics import CloudMetrics
    from service.edge.metrics import EdgeMetrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
        "summary": ("", "_count", "_sum", "_created"),
    }
    names = set()
    for registry in (EdgeMetrics().registry, CloudMetrics().registry):
        for family in registry.collect():
            names.update(family.name + s for s in suffixes[family.type])
    return names


def _dashboard_targets() -> list[dict[str, Any]]:
    out = []
    for panel in DASHBOARD["panels"]:
        out.extend(panel.get("targets", []))
        for inner in panel.get("panels", []):
            out.extend(inner.get("targets", []))
    return out


def test_dashboard_queries_only_registered_metrics() -> None:
    exported = _exported_names()
    used = set()
    for target in _dashboard_targets():
        used.update(re.findall(r"\beibert_[a-z0-9_]+", target["expr"]))
    assert used, "the dashboard queries nothing"
    assert used <= exported, f"not registered by the code: {sorted(used - exported)}"
    wanted = {
        "eibert_edge_request_seconds_bucket",  # latency
        "eibert_edge_request_seconds_count",  # throughput
        "eibert_cloud_requests_total",
        "eibert_edge_model_info",  # model versions
        "eibert_cloud_rollout_percent",  # rollout
        "eibert_cloud_fleet_estimate",  # released fleet estimates
        "eibert_cloud_telemetry_reports_total",  # privacy budget outcomes
        "eibert_cloud_ab_readout",  # the rollout's A/B readout
    }
    assert wanted <= used, f"the dashboard misses {sorted(wanted - used)}"


def test_dashboard_uses_the_provisioned_datasource() -> None:
    uids = {d["uid"] for d in DATASOURCES["datasources"]}
    assert DATASOURCES["datasources"][0]["url"] == "http://prometheus:9090"
    for panel in DASHBOARD["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in uids
            assert all(t["datasource"]["uid"] in uids for t in panel["targets"])
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    mounts = " ".join(SERVICES["grafana"]["volumes"])
    assert "./loadtests/monitoring/grafana/dashboards:/var/lib/grafana/dashboards" in mounts
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/eibert.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# ---------------------------------------------------------------------------------------------------- images


def _built_images() -> dict[str, tuple[Path, str]]:
    """Image tag -> (Dockerfile, target) of the one service that builds it."""
    out: dict[str, tuple[Path, str]] = {}
    for name, svc in SERVICES.items():
        build = svc.get("build")
        if build:
            assert build["context"] == "."
            assert svc["image"] not in out, f"{name}: {svc['image']} is built by a second service"
            out[svc["image"]] = (ROOT / build["dockerfile"], build.get("target", ""))
    return out


def _targets() -> dict[str, str]:
    """Service -> the Dockerfile target of the image it runs (built by itself or by another service)."""
    images = _built_images()
    return {name: images[svc["image"]][1] for name, svc in SERVICES.items() if svc.get("image") in images}


def _mount(vol: str | dict[str, Any]) -> tuple[str, str, bool]:
    """(source, target, read-only) of a short ("src:dst[:ro]") or long (mapping) volume entry."""
    if isinstance(vol, dict):
        return str(vol["source"]), str(vol["target"]), bool(vol.get("read_only"))
    parts = str(vol).split(":")
    return parts[0], parts[1], parts[2:] == ["ro"]


def test_referenced_dockerfiles_and_mounts_exist() -> None:
    targets = _targets()
    assert set(targets) >= {"cloud", "edge-1", "edge-2", "simulator", "locust", "init", "publisher"}
    for path, target in _built_images().values():
        assert path.is_file(), f"{path} is missing"
        assert target in stages(path.read_text()), f"{path} has no target {target!r}"
        ignore = path.with_name(path.name + ".dockerignore")
        assert ignore.is_file() and ".venv" in ignore.read_text().split(), f"{ignore} must keep .venv out"
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            src = _mount(vol)[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"
            elif not src.startswith("${"):
                assert src in COMPOSE["volumes"], f"{name}: volume {src} is not declared"


# ---------------------------------------------------------------------------------------------------- issue 13
# Each finding is a function from a compose document to its problems, so the tests below can show that it
# finds each one in a copy of the file with the finding put back (a check that cannot fail is no check).


def build_problems(compose: dict[str, Any]) -> list[str]:
    """Seven services with their own `build:` made three image ids per tag and left untagged images behind."""
    services = compose["services"]
    builders: dict[str, list[str]] = {}
    for name, svc in services.items():
        if svc.get("build"):
            builders.setdefault(svc.get("image", ""), []).append(name)
    out = [f"{image} is built by {names}" for image, names in builders.items() if len(names) > 1]
    for name, svc in services.items():
        image = svc.get("image", "")
        if image.startswith("eibert-"):
            if image not in builders:
                out.append(f"{name} runs {image}, which no service builds")
            elif not svc.get("build") and svc.get("pull_policy") != "never":
                out.append(f"{name}: {image} is local, set pull_policy: never")
    return out


IMAGE_TARGETS = {"eibert-cloud": "cloud", "eibert-edge": "edge", "eibert-tools": "tools"}


def dockerfile_problems(compose: dict[str, Any]) -> list[str]:
    """Three Dockerfiles repeated each other: every image is one target of the one Dockerfile."""
    out = []
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if not build:
            continue
        if build.get("dockerfile") != str(DOCKERFILE.relative_to(ROOT)):
            out.append(f"{name} builds from {build.get('dockerfile')}, not {DOCKERFILE.relative_to(ROOT)}")
        want = IMAGE_TARGETS.get(svc.get("image", "").split(":")[0])
        if build.get("target") != want or want not in TARGETS:
            out.append(f"{name}: {svc.get('image')} is target {want}, not {build.get('target')}")
    return out


def syntax_problems(dockerfile_text: str) -> list[str]:
    """`# syntax=docker/dockerfile:1` fetches a frontend from Docker Hub, even when base images are local."""
    return ["a # syntax directive"] if re.search(r"^#\s*syntax\s*=", dockerfile_text, re.M | re.I) else []


STATEFUL = {
    "redis": "/data",
    "cloud": "/data",
    "edge-1": "/state",
    "edge-2": "/state",
    "simulator": "/state",
    "prometheus": "/prometheus",  # the image's --storage.tsdb.path default (the command does not move it)
    "grafana": "/var/lib/grafana",
    "init": "/secrets",
}


def volume_problems(compose: dict[str, Any]) -> list[str]:
    out = []
    for name, svc in compose["services"].items():
        mounts = [_mount(v) for v in svc.get("volumes", [])]
        if name in STATEFUL:
            by_target = {target: (src, ro) for src, target, ro in mounts}
            src, ro = by_target.get(STATEFUL[name], ("", True))
            if src not in compose.get("volumes", {}) or ro:
                out.append(f"{name}: {STATEFUL[name]} is not a writable named volume")
        if "--storage.tsdb.path" in " ".join(svc.get("command") or []):
            out.append(f"{name}: moves Prometheus' storage away from its named volume")
        out += [
            f"{name}: writable bind {s} -> {t}" for s, t, ro in mounts if s not in compose.get("volumes", {}) and not ro
        ]
    return out


def data_mount_problems(compose: dict[str, Any]) -> list[str]:
    """A short-syntax bind of a missing directory makes Docker create an empty root-owned one."""
    out = []
    for name in ("simulator", "locust"):
        svc = compose["services"][name]
        vols = [v for v in svc.get("volumes", []) if _mount(v)[1] == "/data"]
        if len(vols) != 1 or not isinstance(vols[0], dict):
            out.append(f"{name}: the data mount must be one long-syntax bind")
            continue
        vol = vols[0]
        if vol.get("type") != "bind" or vol.get("read_only") is not True:
            out.append(f"{name}: the data mount must be a read-only bind")
        if (vol.get("bind") or {}).get("create_host_path") is not False:
            out.append(f"{name}: create_host_path must be false")
        if vol.get("source") != "${EIBERT_DATA_HOST:-../shared/data}":
            out.append(f"{name}: the data comes from EIBERT_DATA_HOST, default ../shared/data")
        if (svc.get("environment") or {}).get("EIBERT_DATA") != vol.get("target"):
            out.append(f"{name}: EIBERT_DATA must name the mount")
    return out


def admin_token_problems(compose: dict[str, Any]) -> list[str]:
    """A token changed on a later `up` must reach the running cloud (it kept the old one: 403, `up` failed)."""
    from loadtests.stack_secrets import ADMIN_TOKEN_FILE

    cloud = compose["services"]["cloud"]
    path = f"/secrets/{ADMIN_TOKEN_FILE}"  # the file init writes, and rewrites when the token changes
    cloud_env = cloud.get("environment") or {}
    out = []
    if cloud_env.get("EIBERT_ADMIN_TOKEN_FILE") != path:
        out.append(f"the cloud must read EIBERT_ADMIN_TOKEN_FILE={path}")
    if cloud.get("entrypoint") or "EIBERT_ADMIN_TOKEN" in cloud_env:
        out.append("the token is copied into the cloud's environment once, at start")
    if flag(compose["services"]["publisher"]["command"], "--admin-token-file") != path:
        out.append("the publisher must read the same token file")
    return out


def _edge_cmd(dockerfile_text: str) -> list[str]:
    return default_command(stages(dockerfile_text), "edge")


SHIPPED = str(SHIPPED_BUNDLE.relative_to(ROOT))  # the one name of the shipped bundle (model_store/shipped.py)


PREVIOUS = str(PREVIOUS_BUNDLE.relative_to(ROOT))  # where `make demo`'s story starts


def edge_default_problems(compose: dict[str, Any], dockerfile_text: str, shipped: str = SHIPPED) -> list[str]:
    """The edge image serves the shipped bundle; the stack tells the demo's story: everything starts on the
    previous bundle (the publisher's release), and the simulator rolls the shipped one out over it."""
    bundle = flag(_edge_cmd(dockerfile_text), "--bundle")
    services = compose["services"]
    starts = {flag(svc["command"], "--bundle") for svc in services.values() if svc.get("command")
              and svc["command"][:2] in (["eibert", "edge"], ["eibert", "simulate"])}  # fmt: skip
    rolled = flag(services["simulator"]["command"], "--rollout-bundle")
    published = flag(services["publisher"]["command"], "--bundle")
    out = [] if bundle == shipped else [f"the edge image serves {bundle}, not {shipped}"]
    if starts != {PREVIOUS} or published != PREVIOUS:
        out.append(f"the stack starts on {starts} and releases {published}, not {PREVIOUS}")
    if rolled != shipped:
        out.append(f"the simulator rolls out {rolled}, not {shipped}")
    for b in (bundle, PREVIOUS, rolled):
        if not (ROOT / str(b) / "manifest.json").is_file():
            out.append(f"{b} is not a shipped bundle")
    return out


EDGE_DOCKERFILE = DOCKERFILE.read_text()  # the edge is one target of it


def test_the_compose_file_has_none_of_the_findings_of_issue_13() -> None:
    assert build_problems(COMPOSE) == []
    assert set(_built_images()) == {"eibert-cloud:0.1.0", "eibert-edge:0.1.0", "eibert-tools:0.1.0"}
    assert dockerfile_problems(COMPOSE) == []
    assert {_targets()["edge-1"], _targets()["edge-2"]} == {"edge"}
    for path, _ in set(_built_images().values()):
        assert syntax_problems(path.read_text()) == [], path
    assert volume_problems(COMPOSE) == []
    assert data_mount_problems(COMPOSE) == []
    assert admin_token_problems(COMPOSE) == []
    assert edge_default_problems(COMPOSE, EDGE_DOCKERFILE) == []
    from service.cloud.config import Settings as CloudSettings

    assert "EIBERT_ADMIN_TOKEN_FILE" in CloudSettings.model_fields["admin_token_file"].validation_alias.choices


def _with(change) -> dict[str, Any]:
    compose = copy.deepcopy(COMPOSE)
    change(compose["services"])
    return compose


def _short_data_mount(services: dict[str, Any]) -> None:
    services["simulator"]["volumes"][-1] = "${EIBERT_DATA_HOST:-../shared/data}:/data:ro"


FINDINGS = {
    "a build per service": (build_problems, lambda s: s["init"].update(build=dict(s["cloud"]["build"]))),
    "a local image pulled": (build_problems, lambda s: s["edge-2"].pop("pull_policy")),
    "a Dockerfile per image": (
        dockerfile_problems,
        lambda s: s["cloud"]["build"].update(dockerfile="service/cloud/Dockerfile"),
    ),
    "no build target": (dockerfile_problems, lambda s: s["simulator"]["build"].pop("target")),
    "the wrong target": (dockerfile_problems, lambda s: s["edge-1"]["build"].update(target="tools")),
    "Prometheus without a volume": (volume_problems, lambda s: s["prometheus"]["volumes"].pop()),
    "Grafana without a volume": (volume_problems, lambda s: s["grafana"]["volumes"].pop(0)),
    "a writable bind": (volume_problems, lambda s: s["grafana"]["volumes"].append("./loadtests:/x")),
    "a short data mount": (data_mount_problems, _short_data_mount),
    "a host path created": (
        data_mount_problems,
        lambda s: s["locust"]["volumes"][-1]["bind"].update(create_host_path=True),
    ),
    "the token in the environment": (admin_token_problems, lambda s: s["cloud"].update(entrypoint=["sh", "-c"])),
    "no token file": (admin_token_problems, lambda s: s["cloud"]["environment"].pop("EIBERT_ADMIN_TOKEN_FILE")),
}


@pytest.mark.parametrize("finding", sorted(FINDINGS))
def test_each_check_finds_its_finding_put_back(finding: str) -> None:
    check, change = FINDINGS[finding]
    assert check(_with(change)), finding


def test_the_syntax_and_edge_default_checks_find_theirs() -> None:
    assert syntax_problems("# syntax=docker/dockerfile:1\nFROM python\n")
    assert not syntax_problems("# the syntax of this file is plain\nFROM python\n")
    stale = EDGE_DOCKERFILE.replace(SHIPPED, "model_store/bundles/eibert-0.1.0")
    assert edge_default_problems(COMPOSE, stale)
    assert edge_default_problems(COMPOSE, EDGE_DOCKERFILE, shipped="model_store/bundles/eibert-0.2.0")


def test_the_readme_says_compose_v2_and_where_the_data_comes_from() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "Compose v2" in readme
    assert "EIBERT_DATA_HOST" in readme and "../shared/data" in readme and "create_host_path: false" in readme
    assert "Compose v2" in (ROOT / "docker-compose.yml").read_text()


PROD = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file, for what these files use: mappings merge, lists and scalars replace."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def dev_mode_problems(compose: dict[str, Any], prod: dict[str, Any]) -> list[str]:
    """The demo stack runs a dev-mode cloud and a simulator that rolls a release out; the production override
    leaves no dev mode anywhere and no demo simulator in a plain `up`."""
    out = []
    demo, production = compose["services"], merged(compose, prod)["services"]
    if env("cloud").get("EIBERT_CLOUD_DEV_MODE") != "true":
        out.append("the demo stack's cloud is not in dev mode: no day closes during `up`")
    prod_env = {k: str(v) for k, v in (production["cloud"].get("environment") or {}).items()}
    if prod_env.get("EIBERT_CLOUD_DEV_MODE") != "false":
        out.append("the production override leaves the cloud in dev mode")
    for name, svc in production.items():
        if "dev" in (svc.get("command") or []) or "--dev" in (svc.get("command") or []):
            out.append(f"{name} runs with --dev in production")
        if "demo" not in (svc.get("profiles") or []) and flag(svc.get("command") or [], "--rollout-bundle"):
            out.append(f"{name} drives a demo rollout in a plain production `up`")
    if "demo" in (demo["simulator"].get("profiles") or []):
        out.append("the demo stack does not run the simulator")
    return out


def test_the_demo_is_dev_mode_and_the_production_override_is_not() -> None:
    assert dev_mode_problems(COMPOSE, PROD) == []
    assert dev_mode_problems(COMPOSE, {"services": {"cloud": {"environment": {"EIBERT_CLOUD_K_MIN": "100"}}}})
    assert dev_mode_problems(COMPOSE, merged(PROD, {"services": {"simulator": {"profiles": []}}}))
    prod_publisher = merged(COMPOSE, PROD)["services"]["publisher"]["command"]
    from loadtests.publish import build_parser

    assert build_parser().parse_args(prod_publisher[3:]).bundle == SHIPPED  # production releases the shipped one


def test_the_readme_names_the_production_override() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docker-compose.prod.yml" in readme and "EIBERT_CLOUD_DEV_MODE" in readme
