#!/usr/bin/env python3
"""A real Sawtooth 1.2 network on 127.0.0.1, without Docker, and the compose files, from one description.

The network: one devmode node, or N validators (default 4) with PBFT, each node with its
validator, settings processor, consensus engine, REST API and `bcfl-tp`. The components are the
real ones, built from source by scripts/sawtooth-build.sh (it runs first, and says why when it
cannot). Genesis is what a deployment does: `sawadm keygen` on every node, then on node 0
`sawset genesis`, `sawset proposal create` with the consensus settings, the PBFT membership and
`sawtooth.validator.transaction_families` allowing only `sawtooth_settings` and `bcfl`, and
`sawadm genesis`. Validators peer statically in a full mesh.

The same functions write `sawtooth-compose/devmode.yaml` and `pbft.yaml` (`compose`), so the
genesis script, the settings and every component's flags are the same natively and in Docker.

Commands (`--dir` holds the network: one folder per node with its keys, chain and logs, and
`network.json`, which records exactly the processes started, so `down` stops those and no other;
`up` starts a new chain, replacing the folder's previous one):

    scripts/sawtooth-net.py up [--consensus devmode|pbft] [--nodes N] [--base-port P] [--json]
    scripts/sawtooth-net.py status [--json]     # each process, each REST API's chain head
    scripts/sawtooth-net.py down                # SIGTERM, then SIGKILL after a timeout
    scripts/sawtooth-net.py kill --node I [--component C] [--signal KILL|TERM]
    scripts/sawtooth-net.py start --node I [--component C]   # the same commands again
    scripts/sawtooth-net.py plan [--consensus C] [--nodes N]  # what `up` would run, as JSON
    scripts/sawtooth-net.py compose [--out DIR] [--nodes N]  # writes the compose files

Ports: node I uses P+10*I (component), +1 (network), +2 (consensus), +3 (REST API); P defaults
to 14000 and `--base-port auto` picks a free block. They stay below 32768: higher ones collide
with the kernel's outgoing ports. Python 3.8+ standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --- the description: settings, genesis, components ----------------------------------------------

#: The only transaction families the validators accept.
TRANSACTION_FAMILIES = [
    {"family": "sawtooth_settings", "version": "1.0"},
    {"family": "bcfl", "version": "1.0"},
]

#: Consensus settings written at genesis, besides the PBFT membership.
CONSENSUS_SETTINGS = {
    "devmode": {
        "sawtooth.consensus.algorithm.name": "Devmode",
        "sawtooth.consensus.algorithm.version": "0.1",
    },
    "pbft": {
        "sawtooth.consensus.algorithm.name": "pbft",
        "sawtooth.consensus.algorithm.version": "1.0",
        # A block at most every 200 ms (default 1 s); a view change after 5 s without progress
        # (default 30 s), which also bounds how long a rejected batch waits.
        "sawtooth.consensus.pbft.block_publishing_delay": "200",
        "sawtooth.consensus.pbft.idle_timeout": "5000",
    },
}

#: Settings every network gets.
COMMON_SETTINGS = {
    "sawtooth.publisher.max_batches_per_block": "1200",
    "sawtooth.validator.transaction_families": json.dumps(TRANSACTION_FAMILIES, separators=(",", ":")),
}

COMPONENTS = ("validator", "settings-tp", "consensus", "rest-api", "bcfl-tp")


@dataclass(frozen=True)
class Layout:
    """Where a node's parts live: addresses and folders, natively or in containers."""

    consensus: str
    nodes: int
    #: host of node i's validator, as the other processes reach it
    host: object  # Callable[[int], str]
    #: the address node i's validator binds its sockets to
    bind: object  # Callable[[int], str]
    #: the address node i's REST API binds to
    rest_bind: object  # Callable[[int], str]
    #: node i's ports: component, network, consensus, rest
    ports: object  # Callable[[int], tuple[int, int, int, int]]
    #: folder shared by all nodes at genesis (public keys)
    shared: str
    #: `$SAWTOOTH_HOME` of node i
    home: object  # Callable[[int], str]


def settings_args(consensus: str) -> list[str]:
    """The `sawset proposal create` settings, as KEY=VALUE (the PBFT membership comes apart)."""
    values = dict(CONSENSUS_SETTINGS[consensus])
    values.update(COMMON_SETTINGS)
    return [f"{k}={v}" for k, v in values.items()]


def genesis_script(layout: Layout, node: int) -> str:
    """The shell script a node runs before its validator starts: its key, and on node 0 genesis.

    Idempotent, as in upstream's compose files: a restarted node keeps its key and chain.
    """
    home = layout.home(node)
    shared = layout.shared
    lines = [
        "set -e",
        f'mkdir -p "{home}/etc" "{home}/keys" "{home}/data" "{home}/logs" "{home}/policy" "{shared}/validators"',
        f'if [ ! -e "{home}/keys/validator.priv" ]; then',
        "  sawadm keygen --quiet",
        f'  cp "{home}/keys/validator.pub" "{shared}/validators/validator-{node}.pub"',
        "fi",
    ]
    if node == 0:
        settings = " ".join(shlex.quote(s) for s in settings_args(layout.consensus))
        lines += [
            f'if [ ! -e "{home}/data/genesis.batch" ] && [ ! -e "{home}/data/block-00.lmdb" ]; then',
            f"  for i in $(seq 0 {layout.nodes - 1}); do",
            f'    while [ ! -s "{shared}/validators/validator-$i.pub" ]; do sleep 0.2; done',
            "  done",
        ]
        if layout.consensus == "pbft":
            # A JSON list of the validators' public keys, in node order.
            lines += [
                "  members=",
                f"  for i in $(seq 0 {layout.nodes - 1}); do",
                f'    members="$members${{members:+,}}\\"$(cat "{shared}/validators/validator-$i.pub")\\""',
                "  done",
            ]
            membership = ' "sawtooth.consensus.pbft.members=[$members]"'
        else:
            membership = ""
        lines += [
            f'  sawset genesis -k "{home}/keys/validator.priv" -o "{home}/config-genesis.batch"',
            f'  sawset proposal create -k "{home}/keys/validator.priv" {settings}{membership} \\',
            f'    -o "{home}/config.batch"',
            f'  sawadm genesis "{home}/config-genesis.batch" "{home}/config.batch"',
            "fi",
        ]
    return "\n".join(lines) + "\n"


def component_argv(layout: Layout, node: int, component: str) -> list[str]:
    """The command line of one component of node `node`."""
    host, bind = layout.host(node), layout.bind(node)
    component_port, network_port, consensus_port, rest_port = layout.ports(node)
    validator = f"tcp://{host}:{component_port}"
    if component == "validator":
        argv = [
            "sawtooth-validator",
            "-v",
            "--endpoint", f"tcp://{host}:{network_port}",
            "--bind", f"component:tcp://{bind}:{component_port}",
            "--bind", f"network:tcp://{bind}:{network_port}",
            "--bind", f"consensus:tcp://{bind}:{consensus_port}",
            "--scheduler", "parallel",
            "--peering", "static",
            "--maximum-peer-connectivity", "10000",
        ]
        # A full mesh: with a star, PBFT secondaries never see each other's messages.
        for other in range(layout.nodes):
            if other != node:
                argv += ["--peers", f"tcp://{layout.host(other)}:{layout.ports(other)[1]}"]
        return argv
    if component == "settings-tp":
        return ["settings-tp", "-C", validator]
    if component == "consensus":
        engine_endpoint = f"tcp://{host}:{consensus_port}"
        if layout.consensus == "pbft":
            return ["pbft-engine", "--connect", engine_endpoint]
        return ["devmode-engine-rust", "--connect", engine_endpoint]
    if component == "rest-api":
        return ["sawtooth-rest-api", "--connect", validator, "--bind", f"{layout.rest_bind(node)}:{rest_port}"]
    if component == "bcfl-tp":
        return ["bcfl-tp", "-v", "-C", validator]
    raise ValueError(f"unknown component {component!r} (one of {', '.join(COMPONENTS)})")


# --- compose files ---------------------------------------------------------------------------------

COMPOSE_PORTS = (4004, 8800, 5050, 8008)
#: Rounds of the compose files' demo.
DEMO_ROUNDS = 3
IMAGES = {
    "validator": "hyperledger/sawtooth-validator:chime",
    "settings-tp": "hyperledger/sawtooth-settings-tp:chime",
    "rest-api": "hyperledger/sawtooth-rest-api:chime",
    "bcfl-tp": "bcfl:latest",
}
ENGINE_IMAGES = {
    "devmode": "hyperledger/sawtooth-devmode-engine-rust:chime",
    "pbft": "hyperledger/sawtooth-pbft-engine:chime",
}


def compose_layout(consensus: str, nodes: int) -> Layout:
    return Layout(
        consensus=consensus,
        nodes=nodes,
        host=lambda i: f"validator-{i}",
        bind=lambda i: "eth0",
        rest_bind=lambda i: f"rest-api-{i}",
        ports=lambda i: COMPOSE_PORTS,
        shared="/shared",
        home=lambda i: "/var/sawtooth",
    )


def yaml_str(value: str) -> str:
    return json.dumps(value)


def yaml_argv(argv: list[str]) -> str:
    return "[" + ", ".join(yaml_str(a) for a in argv) + "]"


def compose_file(consensus: str, nodes: int, members: int) -> str:
    """A compose file: the same genesis script and flags as the native network, plus members."""
    layout = compose_layout(consensus, nodes)
    out = [
        f"# A {nodes}-node Sawtooth 1.2 (\"chime\") network with {consensus} consensus, bcfl-tp beside every",
        "# validator, and the federated demo's members, each talking to its own validator's REST API.",
        "# Generated by `scripts/sawtooth-net.py compose` from the description that also runs the",
        "# network natively (`scripts/sawtooth-net.py up`): edit the script, not this file.",
        "#",
        "#   docker build -f sawtooth-compose/Dockerfile --target ledger -t bcfl:latest .",
        "#   docker build -f sawtooth-compose/Dockerfile --target member -t bcfl-member:latest .",
        f"#   docker compose -f sawtooth-compose/{consensus}.yaml up                 # the network",
        f"#   docker compose -f sawtooth-compose/{consensus}.yaml --profile demo up  # and the demo",
        "#   bcfl --url http://127.0.0.1:8008 audit consortium   # rest-api-0; rest-api-i on 8008+i",
        "",
        "volumes:",
        "  shared:",
        "",
        "services:",
    ]
    for i in range(nodes):
        # $ is doubled: compose would interpolate it.
        script = (genesis_script(layout, i) + "exec " + shlex.join(component_argv(layout, i, "validator"))).replace("$", "$$")
        out += [
            f"  validator-{i}:",
            f"    image: {IMAGES['validator']}",
            "    environment:",
            "      SAWTOOTH_HOME: /var/sawtooth",
            "    volumes:",
            "      - shared:/shared",
            "    expose: [4004, 5050, 8800]",
            f"    command: [\"bash\", \"-c\", {yaml_str(script)}]",
            "    stop_signal: SIGKILL",
            "",
        ]
        for component in ("settings-tp", "consensus", "rest-api", "bcfl-tp"):
            name = "pbft" if component == "consensus" and consensus == "pbft" else component
            name = "devmode-engine" if component == "consensus" and consensus == "devmode" else name
            image = ENGINE_IMAGES[consensus] if component == "consensus" else IMAGES[component]
            out += [f"  {name}-{i}:", f"    image: {image}"]
            if component == "rest-api":
                out += ["    environment:", "      SAWTOOTH_HOME: /var/sawtooth"]
                out += [f"    ports: [\"{8008 + i}:8008\"]"]
            out += [
                f"    depends_on: [validator-{i}]",
                f"    entrypoint: {yaml_argv(component_argv(layout, i, component))}",
                "    stop_signal: SIGKILL",
                "",
            ]
    # The federated demo: `bcfl demo --prepare-only` sets the federation up (consortium,
    # registrations, shards, node configurations) in the shared volume; each member then runs
    # `bcfl node run` in its own container against its own validator's REST API (round robin).
    member_image = "bcfl-member:latest"
    out += [
        "  demo-prepare:",
        f"    image: {member_image}",
        "    profiles: [demo]",
        "    volumes:",
        "      - shared:/shared",
        f"    depends_on: [{', '.join(f'rest-api-{i}' for i in range(nodes))}, {', '.join(f'bcfl-tp-{i}' for i in range(nodes))}]",
        "    entrypoint: " + yaml_argv(demo_prepare_argv(nodes, members, "/shared/demo", lambda i: f"http://rest-api-{i}:8008")),
        "",
    ]
    for name in [f"member-{m}" for m in range(1, members + 1)] + ["coordinator"]:
        # Members stop once they hold the last round's global model; the coordinator after it.
        until = ["--until-round", str(DEMO_ROUNDS)] if name != "coordinator" else []
        out += [
            f"  {name}:",
            f"    image: {member_image}",
            "    profiles: [demo]",
            "    volumes:",
            "      - shared:/shared",
            "    depends_on:",
            "      demo-prepare:",
            "        condition: service_completed_successfully",
            "    entrypoint: " + yaml_argv(["bcfl", "-v", "node", "run", "--config", f"/shared/demo/nodes/{name}.toml"] + until),
            "",
        ]
    return "\n".join(out) + "\n"


def demo_prepare_argv(nodes: int, members: int, work: str, url) -> list[str]:
    """`bcfl demo --prepare-only` for member containers named member-I (port 7100)."""
    argv = ["bcfl", "--url", url(0), "demo", "--members", str(members), "--rounds", str(DEMO_ROUNDS),
            "--work-dir", work, "--prepare-only", "--member-host", "member-{i}"]
    for i in range(nodes):
        argv += ["--ledger", url(i)]
    return argv


# --- the native network ------------------------------------------------------------------------


def native_layout(consensus: str, nodes: int, base_port: int, directory: Path) -> Layout:
    return Layout(
        consensus=consensus,
        nodes=nodes,
        host=lambda i: "127.0.0.1",
        bind=lambda i: "127.0.0.1",
        rest_bind=lambda i: "127.0.0.1",
        ports=lambda i: tuple(base_port + 10 * i + k for k in range(4)),
        shared=str(directory / "shared"),
        home=lambda i: str(directory / f"node-{i}"),
    )


class Failure(Exception):
    """A clear error for the user; the script exits with status 1."""


def log(message: str) -> None:
    print(f"[sawtooth-net] {message}", file=sys.stderr, flush=True)


def build() -> Path:
    """Runs scripts/sawtooth-build.sh (a second when built); exits 3 when it is unavailable."""
    result = subprocess.run(["bash", str(ROOT / "scripts/sawtooth-build.sh")], stdout=subprocess.PIPE, text=True)
    if result.returncode == 3:
        sys.exit(3)
    if result.returncode != 0:
        raise Failure("scripts/sawtooth-build.sh failed (its output is above)")
    return Path(result.stdout.strip().splitlines()[-1])


def find_bcfl_tp(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
        if not os.access(path, os.X_OK):
            raise Failure(f"--bcfl-tp {path}: not an executable file")
        return path.resolve()
    env = os.environ
    target = Path(env.get("CARGO_TARGET_DIR", Path(env.get("BCFL_HOME", Path.home() / ".local/share/bcfl")) / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "bcfl-tp"
        if os.access(candidate, os.X_OK):
            return candidate
    raise Failure(
        f"no bcfl-tp in {target}/release or {target}/debug: build it (cargo build --release -p bcfl-tp) "
        "or pass --bcfl-tp PATH"
    )


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_base_port(nodes: int) -> int:
    """A block of 10*nodes free ports between 20000 and 32000, starting at a random place."""
    span = 10 * nodes
    start = random.randrange(20000, 32000 - span, 10)
    for offset in range(0, 12000, span):
        base = 20000 + (start - 20000 + offset) % (12000 - span)
        base -= base % 10
        if all(port_free(base + 10 * i + k) for i in range(nodes) for k in range(4)):
            return base
    raise Failure("no free block of ports between 20000 and 32000")


def state_path(directory: Path) -> Path:
    return directory / "network.json"


def load_state(directory: Path) -> dict:
    path = state_path(directory)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Failure(f"no network in {directory} ({path} is absent): start one with `up`") from None


def save_state(directory: Path, state: dict) -> None:
    tmp = state_path(directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_path(directory))


def alive(process: dict) -> bool:
    """Whether the recorded process still runs: its PID is alive and its start time the same."""
    pid = process.get("pid")
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return False
    return fields[19] == str(process.get("start_ticks"))


def start_ticks(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def environment(state: dict, node: int) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{state['bin']}:{env.get('PATH', '')}"
    env["SAWTOOTH_HOME"] = state["nodes"][node]["home"]
    env.pop("RUST_LOG", None)
    env["NO_COLOR"] = "1"
    return env


def spawn(state: dict, node: int, component: str) -> None:
    record = state["nodes"][node]["processes"][component]
    argv = list(record["argv"])
    if argv[0] == "bcfl-tp":
        argv[0] = state["bcfl_tp"]
    logfile = Path(record["log"])
    with open(logfile, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=environment(state, node), start_new_session=True,
        )
    record["pid"] = process.pid
    record["start_ticks"] = start_ticks(process.pid)


def stop(record: dict, sig: int, grace: float) -> None:
    """Sends `sig` to the recorded process's group; SIGKILL after `grace` seconds."""
    if not alive(record):
        return
    pid = record["pid"]
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(record):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)


def http_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def head(url: str) -> dict | None:
    try:
        block = http_json(f"{url}/blocks?limit=1")["data"][0]
    except (OSError, ValueError, KeyError, IndexError, urllib.error.URLError):
        return None
    return {"block_num": int(block["header"]["block_num"]), "block_id": block["header_signature"]}


def wait_until(what: str, check, timeout: float, state: dict) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for node in state["nodes"]:
            for name, record in node["processes"].items():
                if record.get("pid") and not alive(record):
                    tail = Path(record["log"]).read_text(errors="replace")[-3000:]
                    raise Failure(f"node {node['index']}'s {name} exited while waiting for {what}; its log ends:\n{tail}")
        time.sleep(0.2)
    raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")


def log_has(record: dict, needle: str) -> bool:
    try:
        return needle in Path(record["log"]).read_text(errors="replace")
    except OSError:
        return False


def up(args) -> int:
    directory = Path(args.dir).resolve()
    if state_path(directory).exists():
        state = json.loads(state_path(directory).read_text())
        running = [r for n in state["nodes"] for r in n["processes"].values() if alive(r)]
        if running:
            raise Failure(f"a network already runs in {directory} ({len(running)} processes): `down --dir {directory}` first")
    nodes = args.nodes or (4 if args.consensus == "pbft" else 1)
    if args.consensus == "pbft" and nodes < 4:
        raise Failure("PBFT needs at least 4 validators (3f+1 with f >= 1)")
    if args.consensus == "devmode" and nodes != 1:
        raise Failure("devmode runs one node (use --consensus pbft for several)")
    base = pick_base_port(nodes) if args.base_port == "auto" else int(args.base_port)
    if base < 1024 or base + 10 * nodes > 32768:
        raise Failure(f"--base-port {base}: the ports must lie between 1024 and 32768")
    busy = [base + 10 * i + k for i in range(nodes) for k in range(4) if not port_free(base + 10 * i + k)]
    if busy:
        raise Failure(f"ports in use: {busy} (pick another --base-port, or `auto`)")
    home = build()
    bcfl_tp = find_bcfl_tp(args.bcfl_tp)

    if directory.exists():
        for child in directory.iterdir():
            if child.name.startswith("node-") or child.name in ("shared", "network.json"):
                subprocess.run(["rm", "-rf", str(child)], check=True)
    directory.mkdir(parents=True, exist_ok=True)
    layout = native_layout(args.consensus, nodes, base, directory)
    state = {
        "consensus": args.consensus,
        "base_port": base,
        "bin": str(home / "bin"),
        "bcfl_tp": str(bcfl_tp),
        "nodes": [],
    }
    for i in range(nodes):
        ports = layout.ports(i)
        node_home = Path(layout.home(i))
        node_home.mkdir(parents=True)
        (node_home / "logs").mkdir()
        state["nodes"].append({
            "index": i,
            "home": str(node_home),
            "rest_url": f"http://127.0.0.1:{ports[3]}",
            "component": f"tcp://127.0.0.1:{ports[0]}",
            "network": f"tcp://127.0.0.1:{ports[1]}",
            "consensus_endpoint": f"tcp://127.0.0.1:{ports[2]}",
            "processes": {
                c: {"argv": component_argv(layout, i, c), "log": str(node_home / "logs" / f"{c}.log")}
                for c in COMPONENTS
            },
        })
    save_state(directory, state)

    started = time.monotonic()
    log(f"genesis ({args.consensus}, {nodes} node{'s' if nodes > 1 else ''}) in {directory}")
    for i in reversed(range(nodes)):
        script = genesis_script(layout, i)
        result = subprocess.run(["bash", "-c", script], env=environment(state, i), capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"node {i}'s genesis script failed:\n{script}\n{result.stdout}{result.stderr}")
        state["nodes"][i]["public_key"] = (Path(layout.home(i)) / "keys/validator.pub").read_text().strip()
    save_state(directory, state)

    try:
        for component in COMPONENTS:
            for i in range(nodes):
                spawn(state, i, component)
            save_state(directory, state)
            if component == "validator":
                wait_until("the validators to listen", lambda: all(not port_free(layout.ports(i)[0]) for i in range(nodes)), 60, state)
        wait_until("every REST API to show the genesis block", lambda: all(head(n["rest_url"]) for n in state["nodes"]), 90, state)
        wait_until("bcfl-tp and settings-tp to register",
                   lambda: all(log_has(n["processes"]["bcfl-tp"], "registered") for n in state["nodes"]), 60, state)
    except BaseException:
        down_state(state, directory)
        raise
    summary = describe(state, directory)
    summary["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        log(f"up in {summary['seconds']} s; REST APIs: {' '.join(n['rest_url'] for n in state['nodes'])}")
        log(f"stop it with: {sys.argv[0]} down --dir {directory}")
    return 0


def describe(state: dict, directory: Path) -> dict:
    return {
        "dir": str(directory),
        "consensus": state["consensus"],
        "rest_urls": [n["rest_url"] for n in state["nodes"]],
        "components": [n["component"] for n in state["nodes"]],
        "nodes": [
            {
                "index": n["index"],
                "rest_url": n["rest_url"],
                "component": n["component"],
                "public_key": n.get("public_key"),
                "head": head(n["rest_url"]),
                "processes": {
                    name: {"pid": r.get("pid"), "alive": alive(r), "log": r["log"]} for name, r in n["processes"].items()
                },
            }
            for n in state["nodes"]
        ],
    }


def down_state(state: dict, directory: Path) -> int:
    stopped = 0
    # Clients first, the validators last.
    for component in reversed(COMPONENTS):
        for node in state["nodes"]:
            record = node["processes"][component]
            if alive(record):
                # The 1.2.6 validator often hangs on SIGTERM with threads left alive.
                stop(record, signal.SIGTERM, 5.0 if component == "validator" else 3.0)
                stopped += 1
            record["pid"] = None
    save_state(directory, state)
    return stopped


def down(args) -> int:
    directory = Path(args.dir).resolve()
    if not state_path(directory).exists():
        log(f"no network in {directory}: nothing to stop")
        return 0
    state = load_state(directory)
    stopped = down_state(state, directory)
    log(f"stopped {stopped} processes in {directory}")
    return 0


def status(args) -> int:
    directory = Path(args.dir).resolve()
    summary = describe(load_state(directory), directory)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for node in summary["nodes"]:
        running = [name for name, p in node["processes"].items() if p["alive"]]
        head_text = f"block {node['head']['block_num']} {node['head']['block_id'][:16]}" if node["head"] else "no REST answer"
        print(f"node {node['index']}  {node['rest_url']}  {head_text}  running: {', '.join(running) or 'nothing'}")
    return 0


def node_record(state: dict, node: int, component: str) -> dict:
    if not 0 <= node < len(state["nodes"]):
        raise Failure(f"--node {node}: the network has nodes 0 to {len(state['nodes']) - 1}")
    if component not in COMPONENTS:
        raise Failure(f"--component {component}: one of {', '.join(COMPONENTS)}")
    return state["nodes"][node]["processes"][component]


def kill(args) -> int:
    directory = Path(args.dir).resolve()
    state = load_state(directory)
    record = node_record(state, args.node, args.component)
    if not alive(record):
        raise Failure(f"node {args.node}'s {args.component} is not running")
    stop(record, getattr(signal, f"SIG{args.signal}"), 5.0)
    save_state(directory, state)
    log(f"node {args.node}'s {args.component} stopped (SIG{args.signal})")
    return 0


def start(args) -> int:
    """Starts one component again, or (without --component) every component of the node that
    is not running, the validator first: a consensus engine exits when its validator goes."""
    directory = Path(args.dir).resolve()
    state = load_state(directory)
    components = [args.component] if args.component else list(COMPONENTS)
    started = []
    validator = node_record(state, args.node, "validator")
    if "validator" in components and not alive(validator):
        # The consensus engine belongs to its validator's run: an engine that outlived it holds
        # the dead run's PBFT state. It starts again, fresh, after the validator.
        stop(node_record(state, args.node, "consensus"), signal.SIGTERM, 3.0)
        if "consensus" not in components:
            components.append("consensus")
    for component in components:
        record = node_record(state, args.node, component)
        if alive(record):
            if args.component:
                raise Failure(f"node {args.node}'s {component} already runs (pid {record['pid']})")
            continue
        spawn(state, args.node, component)
        started.append(f"{component} (pid {record['pid']})")
    save_state(directory, state)
    log(f"node {args.node}: started {', '.join(started) or 'nothing (everything runs)'}")
    return 0


def plan(args) -> int:
    """Prints what `up` would run, without running it: each node's genesis script and each
    component's command line (for checking the compose files against the native network)."""
    directory = Path(args.dir).resolve()
    nodes = args.nodes or (4 if args.consensus == "pbft" else 1)
    layout = native_layout(args.consensus, nodes, int(args.base_port), directory)
    print(json.dumps({
        "consensus": args.consensus,
        "base_port": int(args.base_port),
        "dir": str(directory),
        "nodes": [
            {
                "home": layout.home(i),
                "ports": list(layout.ports(i)),
                "genesis": genesis_script(layout, i),
                "argv": {c: component_argv(layout, i, c) for c in COMPONENTS},
            }
            for i in range(nodes)
        ],
    }, indent=2))
    return 0


def compose(args) -> int:
    out = Path(args.out)
    files = {"devmode.yaml": compose_file("devmode", 1, args.members), "pbft.yaml": compose_file("pbft", args.nodes, args.members)}
    for name, text in files.items():
        (out / name).write_text(text)
        log(f"wrote {out / name}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring: "
                                     + str(Path(__file__).relative_to(ROOT)))
    default_dir = Path(os.environ.get("BCFL_HOME", Path.home() / ".local/share/bcfl")) / "sawtooth-net"
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="genesis, then start every process; waits until the network answers")
    p.add_argument("--dir", default=str(default_dir))
    p.add_argument("--consensus", choices=["devmode", "pbft"], default="pbft")
    p.add_argument("--nodes", type=int, help="validators (pbft: default 4; devmode: 1)")
    p.add_argument("--base-port", default="14000", help="first port, or `auto` (default 14000)")
    p.add_argument("--bcfl-tp", help="the bcfl-tp binary (default: $CARGO_TARGET_DIR/{release,debug}/bcfl-tp)")
    p.add_argument("--json", action="store_true", help="print the network's description as JSON")
    p.set_defaults(run=up)
    p = sub.add_parser("down", help="stop exactly the processes `up` and `start` started")
    p.add_argument("--dir", default=str(default_dir))
    p.set_defaults(run=down)
    p = sub.add_parser("status", help="each process and each REST API's chain head")
    p.add_argument("--dir", default=str(default_dir))
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=status)
    for name, helptext, fn in (("kill", "stop one process", kill), ("start", "start a stopped process again", start)):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--dir", default=str(default_dir))
        p.add_argument("--node", type=int, required=True)
        if name == "kill":
            p.add_argument("--component", default="validator", help=f"one of {', '.join(COMPONENTS)} (default validator)")
            p.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
        else:
            p.add_argument("--component", help=f"one of {', '.join(COMPONENTS)} (default: every one not running)")
        p.set_defaults(run=fn)
    p = sub.add_parser("plan", help="print the genesis scripts and command lines `up` would run")
    p.add_argument("--dir", default=str(default_dir))
    p.add_argument("--consensus", choices=["devmode", "pbft"], default="pbft")
    p.add_argument("--nodes", type=int)
    p.add_argument("--base-port", default="14000")
    p.set_defaults(run=plan)
    p = sub.add_parser("compose", help="write devmode.yaml and pbft.yaml")
    p.add_argument("--out", default=str(ROOT / "sawtooth-compose"))
    p.add_argument("--nodes", type=int, default=4, help="PBFT validators (default 4)")
    p.add_argument("--members", type=int, default=4, help="demo members (default 4)")
    p.set_defaults(run=compose)
    args = parser.parse_args()
    try:
        return args.run(args)
    except Failure as error:
        log(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
