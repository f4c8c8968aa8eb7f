#!/usr/bin/env python3
"""Checks the deployment files of deploy/ against the spillway binary and the engine's sources.

  check_deploy.py kubernetes --deploy DIR --binary BIN --source SRC
      Every YAML file parses; the manifests agree with each other (selectors and pod labels, Secret
      keys and secretKeyRefs, ports, the ConfigMap the container's config path names); the
      container's arguments are ones `spillway run --help` lists; the environment the Deployment
      sets is what the engine and the ConfigMap's pipeline file read; the probes are routes of
      engine/http/routes.cpp; and `spillway validate` accepts the ConfigMap's pipeline file with
      the Deployment's environment, without a warning.
  check_deploy.py systemd --unit FILE --binary BIN --source SRC
      The unit's command line as above, then `systemd-analyze verify` and `systemd-analyze
      security --offline` on a copy of it (exit 77, CTest's skip, without systemd-analyze).
  check_deploy.py facts --deploy DIR --binary BIN
      What tests/deploy/test_deploy_runtime.cpp needs to run the Deployment's pods for real, as JSON
      on stdout: the container's command line, its environment, the pipeline file, the probes.

The numbers the design fixes (docs: ../shared/design/SCALE-OUT.md, section 5) are checked as
numbers; everything the engine decides (routes, option names, variables it reads) is read from the
binary or the sources, never copied here.
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit("check_deploy.py: PyYAML is missing: install python3-yaml (tools/dev setup does)")

# What a fieldRef metadata.name gives a pod of the Deployment: <deployment>-<hash>-<suffix>.
POD_NAME = "spillway-7c9d8f6b5-x2x7q"
PLACEHOLDER = "REPLACE-ME"
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")


class Problems:
    def __init__(self):
        self.items = []

    def check(self, ok, message):
        if not ok:
            self.items.append(message)
        return ok

    def report(self, what):
        for p in self.items:
            print(f"FAIL: {p}")
        if self.items:
            print(f"{what}: {len(self.items)} problem(s)")
            return 1
        print(f"{what}: OK")
        return 0


# ---- what the engine itself says ----------------------------------------------------------------

def engine_routes(source):
    """The fixed paths of engine/http/routes.cpp's route table (match_route)."""
    text = (source / "engine/http/routes.cpp").read_text()
    return set(re.findall(r'path == "(/[^"]*)"', text))


def engine_env_vars(source):
    """Environment variables the engine and the CLI read by name (getenv("NAME"))."""
    names = {}
    for folder in ("engine", "tools/spillway"):
        for f in sorted((source / folder).rglob("*.cpp")):
            for name in re.findall(r'getenv\("([A-Za-z_][A-Za-z0-9_]*)"\)', f.read_text()):
                names.setdefault(name, str(f.relative_to(source)))
    return names


def run_help(binary, *args):
    r = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args)} --help exited {r.returncode}: {r.stderr}")
    return r.stdout


def parse_cli_help(text):
    """CLI11's help: (positional names in order, {option name: takes a value}, subcommands)."""
    positionals, options, subcommands, section = [], {}, [], None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
            continue
        m = re.match(r"^  (\S+)(?: ([A-Z][A-Z:]*))?", line)
        if not m:
            continue
        if section == "Positionals":
            positionals.append(m.group(1))
        elif section == "Options":
            for name in m.group(1).split(","):
                options[name] = m.group(2) is not None
        elif section == "Subcommands":
            subcommands.append(m.group(1))
    return positionals, options, subcommands


def check_command_line(problems, where, argv, binary):
    """argv is the deployed command line (its program a `spillway`). Returns (the index of the
    config path in argv, the --env value); (None, None) when it is not `spillway run`."""
    if not problems.check(len(argv) >= 2 and os.path.basename(argv[0]) == "spillway",
                          f"{where}: the command is not `spillway <subcommand> ...`: {argv}"):
        return None, None
    _, _, subcommands = parse_cli_help(run_help(binary))
    problems.check(argv[1] in subcommands, f"{where}: `{argv[1]}` is not a subcommand of spillway {subcommands}")
    if not problems.check(argv[1] == "run", f"{where}: the engine is started by `spillway run`, not `{argv[1]}`"):
        return None, None
    positionals, options, _ = parse_cli_help(run_help(binary, "run"))
    given, values, i = [], {}, 2
    while i < len(argv):
        a = argv[i]
        if a.startswith("-"):
            name = a.split("=", 1)[0]
            if not problems.check(name in options, f"{where}: `spillway run --help` lists no option {name}"):
                i += 1
                continue
            if "=" in a:
                values[name] = a.split("=", 1)[1]
            elif options[name]:
                if not problems.check(i + 1 < len(argv), f"{where}: {name} needs a value"):
                    break
                values[name] = argv[i + 1]
                i += 1
        else:
            given.append(i)
        i += 1
    problems.check(len(given) == len(positionals),
                   f"{where}: `spillway run` takes the positionals {positionals}, the command gives "
                   f"{[argv[j] for j in given]}")
    problems.check("--env" in values, f"{where}: no --env: the environment would come from the host's "
                   "SPILLWAY_ENV/ENVIRONMENT or default to development")
    return (given[0] if given else None), values.get("--env")


def validate(binary, toml_text, environment, env_vars, file_vars):
    """`spillway validate` of the text with env_vars as the pod's environment. Of this process's
    environment only what concerns neither the engine nor the file is kept (PATH, the
    sanitizers' options under tools/dev test --sanitize)."""
    with tempfile.TemporaryDirectory(prefix="spillway-deploy-") as d:
        path = Path(d) / "pipeline.toml"
        path.write_text(toml_text)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SPILLWAY_") and k != "ENVIRONMENT" and k not in file_vars}
        env.update(env_vars)
        return subprocess.run([binary, "validate", str(path), "--env", environment], capture_output=True,
                              text=True, env=env, timeout=60)


# ---- the pipeline file --------------------------------------------------------------------------

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:[-?])?")


def toml_strings(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from toml_strings(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from toml_strings(v, path + (str(i),))
    elif isinstance(node, str):
        yield ".".join(path), node


def variables(value):
    """[(name, required)] of the ${...} in a string; ${VAR:-default} is not required."""
    return [(m.group(1), m.group(2) != ":-") for m in VAR.finditer(value.replace("$$", ""))]


def split_listen(listen):
    host, _, port = listen.rpartition(":")
    return host, int(port) if port.isdigit() else None


def is_loopback(host):
    return host in LOOPBACK_HOSTS or host.startswith("127.")


# ---- the Kubernetes manifests -------------------------------------------------------------------

class Manifests:
    """deploy/kubernetes, parsed, and the parts of it the checks and the runtime test share."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix in (".yaml", ".yml"))
        self.docs = []  # (file name, document)
        for f in self.files:
            for doc in yaml.safe_load_all(f.read_text()):
                if doc is not None:
                    self.docs.append((f.name, doc))

    def of_kind(self, kind):
        return [d for _, d in self.docs if d.get("kind") == kind]

    def one(self, kind):
        found = self.of_kind(kind)
        if len(found) != 1:
            raise LookupError(f"{self.folder}: {len(found)} {kind} objects, one expected")
        return found[0]

    def named(self, kind, name):
        return next((d for d in self.of_kind(kind) if d.get("metadata", {}).get("name") == name), None)

    @property
    def deployment(self):
        return self.one("Deployment")

    @property
    def pod(self):
        return self.deployment["spec"]["template"]

    @property
    def container(self):
        containers = self.pod["spec"]["containers"]
        if len(containers) != 1:
            raise LookupError(f"the Deployment has {len(containers)} containers, one expected")
        return containers[0]

    def argv(self):
        c = self.container
        return list(c.get("command", [])) + list(c.get("args", []))

    def secret_value(self, name, key):
        s = self.named("Secret", name)
        if s is None:
            return None
        if key in (s.get("stringData") or {}):
            return str(s["stringData"][key])
        if key in (s.get("data") or {}):
            return base64.b64decode(s["data"][key]).decode()
        return None

    def config_file(self, path):
        """(ConfigMap name, key, text) of the file the container sees at `path`."""
        mounts = {m["name"]: m for m in self.container.get("volumeMounts", [])}
        for v in self.pod["spec"].get("volumes", []):
            cm = v.get("configMap")
            m = mounts.get(v["name"])
            if not cm or not m:
                continue
            mount = m["mountPath"].rstrip("/")
            if m.get("subPath"):
                if mount != path:
                    continue
                key = m["subPath"]
            else:
                if os.path.dirname(path) != mount:
                    continue
                name = os.path.basename(path)
                items = cm.get("items")
                key = next((i["key"] for i in items if i["path"] == name), None) if items else name
            obj = self.named("ConfigMap", cm["name"])
            text = (obj or {}).get("data", {}).get(key)
            return cm["name"], key, text
        return None, None, None

    def port_number(self, port):
        """A probe's or Service's port (a number or a containerPort name) as a number."""
        if isinstance(port, int):
            return port
        for p in self.container.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        return None

    def environment(self, pod_name=POD_NAME):
        """[(name, value, source)] of the container's env, resolved as the kubelet would."""
        out = []
        for e in self.container.get("env", []):
            vf = e.get("valueFrom")
            if vf is None:
                out.append((e["name"], str(e.get("value", "")), "literal"))
            elif "secretKeyRef" in vf:
                r = vf["secretKeyRef"]
                out.append((e["name"], self.secret_value(r["name"], r["key"]), f"secret {r['name']}/{r['key']}"))
            elif vf.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                out.append((e["name"], pod_name, "pod name"))
            else:
                out.append((e["name"], None, f"unsupported valueFrom {vf}"))
        return out


def selector_matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes(args):
    problems = Problems()
    source, binary = Path(args.source), args.binary
    try:
        m = Manifests(args.deploy)
    except yaml.YAMLError as e:
        print(f"FAIL: a YAML file does not parse: {e}")
        return 1
    print(f"parsed {len(m.files)} files, {len(m.docs)} documents: " +
          ", ".join(f"{f}:{d.get('kind')}" for f, d in m.docs))

    # Every object is complete enough for the API server, and the kustomization lists every file.
    expected_api = {"Deployment": "apps/v1", "Service": "v1", "PodDisruptionBudget": "policy/v1",
                    "Secret": "v1", "ConfigMap": "v1", "Kustomization": "kustomize.config.k8s.io/v1beta1"}
    for f, d in m.docs:
        kind = d.get("kind")
        problems.check(kind in expected_api, f"{f}: unexpected kind {kind}")
        problems.check(d.get("apiVersion") == expected_api.get(kind),
                       f"{f}: {kind} has apiVersion {d.get('apiVersion')}, expected {expected_api.get(kind)}")
        if kind != "Kustomization":
            problems.check(bool(d.get("metadata", {}).get("name")), f"{f}: {kind} without metadata.name")
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "Secret", "ConfigMap", "Kustomization"):
        problems.check(len(m.of_kind(kind)) == 1, f"{len(m.of_kind(kind))} {kind} objects, one expected")
    if problems.items:
        return problems.report("kubernetes")
    kustomization = m.one("Kustomization")
    listed = sorted(kustomization.get("resources", []))
    others = sorted(f.name for f in m.files if f.name != "kustomization.yaml")
    problems.check(listed == others, f"kustomization.yaml lists {listed}, the folder has {others}")
    images = [i.get("name") for i in kustomization.get("images", [])]
    problems.check(m.container.get("image") in images,
                   f"kustomization.yaml's images {images} do not set the container's image {m.container.get('image')}")

    # The pods, and what selects them.
    dep, pod = m.deployment, m.pod
    labels = pod["metadata"].get("labels", {})
    problems.check(dep["spec"].get("replicas") == 3, f"Deployment replicas {dep['spec'].get('replicas')}, expected 3")
    problems.check(selector_matches(dep["spec"]["selector"].get("matchLabels"), labels),
                   "the Deployment's selector does not match its pod labels")
    service, pdb = m.one("Service"), m.one("PodDisruptionBudget")
    problems.check(service["spec"].get("type", "ClusterIP") == "ClusterIP", "the Service is not ClusterIP")
    problems.check(selector_matches(service["spec"].get("selector"), labels),
                   f"the Service's selector {service['spec'].get('selector')} does not match the pod labels {labels}")
    problems.check(selector_matches(pdb["spec"].get("selector", {}).get("matchLabels"), labels),
                   "the PodDisruptionBudget's selector does not match the pod labels")
    problems.check(pdb["spec"].get("maxUnavailable") == 1, "PodDisruptionBudget maxUnavailable is not 1")
    spread = pod["spec"].get("topologySpreadConstraints", [])
    zone = [t for t in spread if t.get("topologyKey") == "topology.kubernetes.io/zone"]
    problems.check(len(zone) == 1, "no topologySpreadConstraint across topology.kubernetes.io/zone")
    for t in spread:
        problems.check(selector_matches(t.get("labelSelector", {}).get("matchLabels"), labels),
                       f"the spread over {t.get('topologyKey')} does not select the pod labels")
    problems.check(pod["spec"].get("terminationGracePeriodSeconds") == 30, "terminationGracePeriodSeconds is not 30")

    # The command line, as `spillway run --help` has it, and the pipeline file it names.
    argv = m.argv()
    config_index, environment = check_command_line(problems, "Deployment", argv, binary)
    if config_index is None:
        return problems.report("kubernetes")
    config_path = argv[config_index]
    cm_name, cm_key, toml_text = m.config_file(config_path)
    if not problems.check(toml_text is not None,
                          f"no ConfigMap key is mounted at {config_path} (the container's config path)"):
        return problems.report("kubernetes")
    print(f"the container runs {argv}; {config_path} is ConfigMap {cm_name}, key {cm_key}")
    try:
        config = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        problems.check(False, f"ConfigMap {cm_name} key {cm_key}: not TOML: {e}")
        return problems.report("kubernetes")
    strings = list(toml_strings(config))

    # Each pipeline is the shape section 5 of the design names.
    plugins_by_kind = {"sink": "kafka", "store": "postgres", "notifier": "pgnotify", "scheduler": "adaptive"}
    pipelines = config.get("pipeline", {})
    problems.check(bool(pipelines), "the pipeline file has no [pipeline.*]")
    for name, p in pipelines.items():
        for kind, plugin in plugins_by_kind.items():
            got = config.get(kind, {}).get(p.get(kind), {}).get("plugin")
            problems.check(got == plugin, f"pipeline {name}: its {kind} is plugin {got}, expected {plugin}")

    # The environment: set from the right places, and read by someone.
    env = m.environment()
    env_names = [n for n, _, _ in env]
    engine_reads = engine_env_vars(source)
    file_reads = {}
    for key, value in strings:
        for name, required in variables(value):
            file_reads.setdefault(name, []).append((key, required))
    for name, value, origin in env:
        problems.check(value is not None, f"env {name}: {origin} gives no value (a missing Secret key?)")
        problems.check(name in engine_reads or name in file_reads,
                       f"env {name}: neither the engine (getenv in engine/, tools/spillway/) nor the pipeline file reads it")
    problems.check(len(env_names) == len(set(env_names)), f"env names repeat: {env_names}")
    member = [o for n, _, o in env if n == "SPILLWAY_MEMBER_ID"]
    problems.check("SPILLWAY_MEMBER_ID" in engine_reads,
                   "the engine no longer reads SPILLWAY_MEMBER_ID (engine/pipeline/member.cpp)")
    problems.check(member == ["pod name"], f"SPILLWAY_MEMBER_ID is not set from fieldRef metadata.name: {member}")
    for name, uses in file_reads.items():
        if any(required for _, required in uses):
            problems.check(name in env_names, f"the pipeline file needs ${{{name}}} ({uses[0][0]}), the Deployment does not set it")
    origin_of = {n: o for n, _, o in env}
    for key, value in strings:
        secret_option = key.endswith(".url") or key == "engine.http_token"
        if secret_option:
            names = [n for n, _ in variables(value)]
            problems.check(bool(names) and all(origin_of.get(n, "").startswith("secret ") for n in names),
                           f"{key} = {value!r}: must come from the Secret (a secretKeyRef variable)")

    # The Secret: every key used, every key placeholder text.
    secret_refs = {}
    for e in m.container.get("env", []):
        r = e.get("valueFrom", {}).get("secretKeyRef")
        if r:
            secret_refs.setdefault(r["name"], set()).add(r["key"])
    for s in m.of_kind("Secret"):
        name = s["metadata"]["name"]
        keys = set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
        problems.check(keys == secret_refs.get(name, set()),
                       f"Secret {name} has keys {sorted(keys)}, the Deployment reads {sorted(secret_refs.get(name, set()))}")
        for k in keys:
            problems.check(PLACEHOLDER in (m.secret_value(name, k) or ""),
                           f"Secret {name} key {k}: not a placeholder (no {PLACEHOLDER}): real secrets do not belong in the repository")
    for name in secret_refs:
        problems.check(m.named("Secret", name) is not None, f"secretKeyRef to Secret {name}, which deploy/kubernetes lacks")

    # The listener, the port and the probes.
    listen = config.get("engine", {}).get("http_listen")
    host, port = split_listen(listen or "")
    problems.check(listen is not None and port is not None, f"engine.http_listen is {listen!r}: no host:port")
    problems.check(host in ("0.0.0.0", "::", "[::]"),
                   f"engine.http_listen {listen!r}: the probes and the Service reach the pod from outside, bind 0.0.0.0")
    if not is_loopback(host):
        problems.check("http_token" in config.get("engine", {}),
                       "engine.http_listen is not loopback and there is no http_token: anyone reaching the port may publish")
    ports = m.container.get("ports", [])
    problems.check([p.get("containerPort") for p in ports] == [port],
                   f"containerPorts {[p.get('containerPort') for p in ports]}, the pipeline file listens on {port}")
    problems.check(m.port_number(service["spec"]["ports"][0].get("targetPort")) == port,
                   "the Service's targetPort is not the listener's port")
    routes = engine_routes(source)
    probes = {"readinessProbe": (2, None), "livenessProbe": (10, 6)}
    for probe, (period, failures) in probes.items():
        spec = m.container.get(probe, {})
        get = spec.get("httpGet", {})
        problems.check(get.get("path") in routes, f"{probe} path {get.get('path')} is no route of engine/http/routes.cpp {sorted(routes)}")
        problems.check(m.port_number(get.get("port")) == port, f"{probe} port {get.get('port')} is not the listener's {port}")
        problems.check(spec.get("periodSeconds") == period, f"{probe} periodSeconds {spec.get('periodSeconds')}, expected {period}")
        if failures is not None:
            problems.check(spec.get("failureThreshold") == failures,
                           f"{probe} failureThreshold {spec.get('failureThreshold')}, expected {failures}")
    problems.check(m.container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
                   "readinessProbe is not /readyz (pipelines running, store reachable)")
    problems.check(m.container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz",
                   "livenessProbe is not /healthz (the process answers; no database or Kafka check)")
    annotations = pod["metadata"].get("annotations", {})
    if "prometheus.io/path" in annotations:
        problems.check(annotations["prometheus.io/path"] in routes, "prometheus.io/path is no route of the engine")
        problems.check(annotations.get("prometheus.io/port") == str(port), "prometheus.io/port is not the listener's")

    # The real engine reads the file with the environment the pods get.
    resolved = {n: v for n, v, _ in env if v is not None}
    r = validate(binary, toml_text, environment or "development", resolved, set(file_reads))
    problems.check(r.returncode == 0, f"spillway validate (env {environment}) exited {r.returncode}: {r.stderr.strip()}")
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning")]
    problems.check(not warnings, f"spillway validate warns: {warnings}")
    print(f"spillway validate --env {environment}: exit {r.returncode}; {r.stderr.strip().splitlines()[-1:]}")

    # kubectl, where installed (not a Debian package, so not in tools/dev setup): kustomize's build.
    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", str(m.folder)], capture_output=True, text=True, timeout=60)
        problems.check(r.returncode == 0, f"kubectl kustomize failed: {r.stderr.strip()}")
        kinds = sorted(d.get("kind") for d in yaml.safe_load_all(r.stdout) if d) if r.returncode == 0 else []
        print(f"kubectl kustomize: {kinds}")
    else:
        print("kubectl not installed: `kubectl kustomize` not tried")
    return problems.report("kubernetes")


def facts(args):
    m = Manifests(args.deploy)
    argv = m.argv()
    problems = Problems()
    config_index, _ = check_command_line(problems, "Deployment", argv, args.binary)
    if config_index is None:
        return problems.report("facts")
    _, _, toml_text = m.config_file(argv[config_index])
    config = tomllib.loads(toml_text)
    env = m.environment()
    origin_of = {n: o for n, _, o in env}

    def vars_of(values):
        return sorted({n for v in values if isinstance(v, str) for n, _ in variables(v)})

    store_urls = [c.get("url") for c in config.get("store", {}).values()]
    notifier_urls = [c.get("url") for c in config.get("notifier", {}).values() if c.get("plugin") == "pgnotify"]
    brokers = [c.get("bootstrap.servers") for c in config.get("sink", {}).values()]
    readiness = m.container["readinessProbe"]["httpGet"]["path"]
    liveness = m.container["livenessProbe"]["httpGet"]["path"]
    out = {
        "argv": argv,
        "config_index": config_index,
        "pipeline_toml": toml_text,
        "listen": config["engine"]["http_listen"],
        "env": [{"name": n, "value": v, "pod_name": o == "pod name"} for n, v, o in env],
        "database_url_vars": vars_of(store_urls + notifier_urls),
        "kafka_brokers_vars": vars_of(brokers),
        "token_var": (vars_of([config["engine"].get("http_token")]) or [None])[0],
        "replicas": m.deployment["spec"]["replicas"],
        "grace_seconds": m.pod["spec"]["terminationGracePeriodSeconds"],
        "probe_paths": [readiness, liveness] + [m.pod["metadata"].get("annotations", {}).get("prometheus.io/path")],
        "readiness_path": readiness,
        "pipelines": {n: {"topic": p.get("topic")} for n, p in config.get("pipeline", {}).items()},
    }
    out["probe_paths"] = [p for p in out["probe_paths"] if p]
    for name in out["database_url_vars"] + out["kafka_brokers_vars"]:
        problems.check(name in origin_of, f"the pipeline file reads ${{{name}}}, the Deployment does not set it")
    if problems.items:
        return problems.report("facts")
    json.dump(out, sys.stdout, indent=1)
    return 0


# ---- systemd ------------------------------------------------------------------------------------

def unit_entries(text):
    """[(section, key, value)] of a unit file, in order (keys may repeat)."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def check_systemd(args):
    problems = Problems()
    unit_path, binary, source = Path(args.unit), args.binary, Path(args.source)
    text = unit_path.read_text()
    entries = unit_entries(text)
    service = {}
    for section, key, value in entries:
        if section == "Service":
            service.setdefault(key, []).append(value)
    exec_start = service.get("ExecStart", [])
    if not problems.check(len(exec_start) == 1, f"ExecStart= {exec_start}: one expected"):
        return problems.report("systemd")
    argv = exec_start[0].split()
    config_index, environment = check_command_line(problems, unit_path.name, argv, binary)
    config_path = argv[config_index] if config_index is not None else None
    problems.check(argv[0] == "/usr/bin/spillway", f"ExecStart runs {argv[0]}, not /usr/bin/spillway")
    problems.check(environment == "production", f"--env {environment}, expected production")
    problems.check(config_path == "/etc/spillway/%i.toml", f"the pipeline file is {config_path}, not /etc/spillway/%i.toml")
    engine_reads = engine_env_vars(source)
    for assignment in service.get("Environment", []):
        for item in assignment.split():
            name = item.split("=", 1)[0].strip('"')
            problems.check(name in engine_reads, f"Environment={item}: the engine does not read {name}")
    problems.check("SPILLWAY_MEMBER_ID=%H-%i" in " ".join(service.get("Environment", [])),
                   "Environment= does not set SPILLWAY_MEMBER_ID=%H-%i")
    for key, want in {"Type": "exec", "Restart": "always", "RestartSec": "1", "TimeoutStopSec": "30",
                      "LimitNOFILE": "65536"}.items():
        problems.check(service.get(key) == [want], f"{key}= {service.get(key)}, expected {want}")
    unit = {k: v for s, k, v in entries if s == "Unit"}
    problems.check("network-online.target" in unit.get("After", "") and "network-online.target" in unit.get("Wants", ""),
                   "After= and Wants= must name network-online.target")
    problems.check(service.get("User", ["root"]) != ["root"], "the unit runs as root: set User=")
    if problems.items:
        return problems.report("systemd")

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("SKIP: systemd-analyze not installed (Debian package systemd): the unit's static checks passed, "
              "`systemd-analyze verify` was not run")
        return 77
    # /usr/bin/spillway does not exist on a build machine and verify refuses a missing executable:
    # verify a copy that runs the built binary instead, as an instance (a template alone is
    # not loaded with its specifiers).
    with tempfile.TemporaryDirectory(prefix="spillway-unit-") as d:
        copy = Path(d) / unit_path.name
        copy.write_text(text.replace("ExecStart=/usr/bin/spillway ", f"ExecStart={os.path.abspath(binary)} "))
        instance = Path(d) / unit_path.name.replace("@.", "@orders.")
        instance.symlink_to(copy.name)
        r = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=120)
        # verify exits 0 on unknown keys and unparsable values, which it only prints.
        problems.check(r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(),
                       f"systemd-analyze verify (exit {r.returncode}): {(r.stderr + r.stdout).strip()}")
        print(f"systemd-analyze verify {instance.name} (ExecStart -> {binary}): exit {r.returncode}")
        r = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(instance)], capture_output=True,
                           text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
        if problems.check(m is not None, f"systemd-analyze security gave no exposure level: {r.stdout[-500:]} {r.stderr}"):
            print(f"systemd-analyze security --offline: {m.group(1)} {m.group(2)}")
            problems.check(m.group(2) in ("PERFECT", "SAFE", "OK"),
                           f"the unit's exposure is {m.group(1)} {m.group(2)}: its hardening was weakened")
    return problems.report("systemd")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kubernetes")
    k.add_argument("--deploy", required=True)
    k.add_argument("--binary", required=True)
    k.add_argument("--source", required=True)
    s = sub.add_parser("systemd")
    s.add_argument("--unit", required=True)
    s.add_argument("--binary", required=True)
    s.add_argument("--source", required=True)
    f = sub.add_parser("facts")
    f.add_argument("--deploy", required=True)
    f.add_argument("--binary", required=True)
    args = parser.parse_args()
    return {"kubernetes": check_kubernetes, "systemd": check_systemd, "facts": facts}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
