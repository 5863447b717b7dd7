"""One bench run: set everything up, measure side by side, tear everything down.

Order of a run:

1. tools (wrk, nginx, py-spy), PostgreSQL and Redis (``bench.stores``);
2. the stub backend, the pass-throughs, and one walletgate per deployment (a wallet
   count and an audit-table size), plus one started with ``--workers``;
3. a probe of every target with every scenario: each answers what it should (an
   allowed spend gets its hash, a refused one its reason), or the run stops;
4. the audit table of the large deployment is filled (cloned from the probes' rows);
5. closed-loop saturation: every scenario on every target, in rounds, the order of the
   targets rotating every round, so slow drifts of a shared machine hit all of them;
6. open-loop latency at half the pass-through's saturation rate (and at a quarter of
   walletgate's own), the scale deployments, 1 vs N workers, py-spy profiles of spends
   and reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from bench import anatomy, decision, loadgen, profile, services, stores
from bench.procstat import CpuGroups, cpu_delta
from bench.results import (
    CLOSED,
    OPEN,
    OWN_RATE,
    OWN_RATE_SHARE,
    PASS_RATE,
    SCALE,
    SCALE_RATE,
    SCALE_RATE_SHARE,
    WORKERS,
    Measurement,
    Results,
    TargetInfo,
)
from bench.scenarios import ALLOWED_SPEND, READS, SCENARIOS, SPEND_SCENARIOS, Scenario
from bench.tools import Tools, ensure_tools, tool_version

#: An open-loop rate is offered to a target only below this share of its saturation:
#: beyond it the queue grows for the whole run, and the latency says only "overloaded".
MAX_OPEN_LOAD = 0.9
#: The targets every scenario runs against, side by side.
MATRIX_TARGETS = ("direct", "nginx", "passthrough", "walletgate")

#: Registers a started service to be stopped when the run ends; returns it.
Keep = Callable[[services.Service], services.Service]


@dataclass(frozen=True)
class BenchConfig:
    """How much to measure. The defaults are the full run (about 15 minutes)."""

    seconds: float = 3.0  # per closed-loop measurement
    rounds: int = 5
    open_seconds: float = 6.0
    connections: int = 32
    wallets: tuple[int, ...] = (1, 1_000, 100_000)
    main_wallets: int = 1_000  # the deployment the scenario matrix runs against
    audit_rows: int = 1_000_000  # added to a copy of the largest deployment
    workers: int = 2
    profile_seconds: float = 15.0
    chain_id: int = 31337
    nginx: bool = True
    smoke: bool = False


SMOKE = BenchConfig(
    seconds=1.0,
    rounds=1,
    open_seconds=1.5,
    wallets=(1, 100),
    main_wallets=100,
    audit_rows=1_000,
    profile_seconds=2.0,
    smoke=True,
)


@dataclass(frozen=True)
class Deployment:
    """One walletgate setup: its policy set's size and its audit table's."""

    name: str
    wallets: int
    audit_rows: int
    redis_db: int

    @property
    def label(self) -> str:
        rows = f", {self.audit_rows:,} audit rows" if self.audit_rows else ""
        return f"walletgate ({self.wallets:,} wallets{rows})"


@dataclass
class Target:
    """A process under test, reachable at ``url``, with the CPU groups to measure."""

    info: TargetInfo
    url: str
    cpu: CpuGroups
    walletgate: bool
    token: str = ""
    database_url: str = ""


def deployments_for(config: BenchConfig) -> list[Deployment]:
    """A deployment per wallet count, plus the largest one with a filled audit table."""
    out = [Deployment(f"w{w}", w, 0, index) for index, w in enumerate(config.wallets, 1)]
    if config.audit_rows:
        largest = max(config.wallets)
        out.append(Deployment(f"w{largest}-audit", largest, config.audit_rows, len(out) + 1))
    return out


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


class Run:
    """The state of one run: its targets, its results, where its files go."""

    def __init__(self, config: BenchConfig, workdir: Path, tools: Tools) -> None:
        self.config = config
        self.workdir = workdir
        self.tools = tools
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.bodies = _write_bodies(workdir / "bodies")
        self.targets: dict[str, Target] = {}
        self.results = Results(
            config=asdict(config),
            machine={},
            targets={},
            scenarios={s.name: s.title for s in SCENARIOS},
            notes=list(tools.notes),
        )

    def add(self, target: Target) -> None:
        self.targets[target.info.name] = target
        self.results.targets[target.info.name] = target.info

    # -- measuring ---------------------------------------------------------------------

    def measure(
        self,
        section: str,
        scenario: Scenario,
        target: Target,
        round_: int,
        *,
        rate: float | None = None,
        rate_basis: str | None = None,
        connections: int | None = None,
    ) -> Measurement:
        """One load run (closed loop, or open loop at ``rate``), with CPU accounting."""
        body = self.bodies[scenario.name]
        before = target.cpu.sample()
        if rate is None:
            load = loadgen.closed_loop(
                self.tools.wrk,
                target.url,
                body,
                target.token,
                connections=connections or self.config.connections,
                seconds=self.config.seconds,
            )
        else:
            load = loadgen.open_loop(
                target.url, body, target.token, rate=rate, seconds=self.config.open_seconds
            )
        measurement = Measurement(
            section,
            scenario.name,
            target.info.name,
            round_,
            load,
            cpu_delta(before, target.cpu.sample()),
            rate,
            rate_basis,
        )
        self.results.measurements.append(measurement)
        _say(
            f"{section:7} {scenario.name:13} {target.info.name:13} "
            f"{load.throughput:8.0f} req/s  p99 {load.latency_ms.get('p99', 0):7.2f} ms"
            + (f"  (offered {rate:.0f}/s)" if rate else "")
        )
        return measurement

    def warm_up(self, scenario: Scenario, target: Target) -> None:
        """A short unrecorded run: connections open, caches warm, code paths hot."""
        loadgen.closed_loop(
            self.tools.wrk,
            target.url,
            self.bodies[scenario.name],
            target.token,
            connections=self.config.connections,
            seconds=1.0,
        )

    def rounds(
        self, section: str, scenarios: Sequence[Scenario], targets: Sequence[Target], **kw: Any
    ) -> None:
        """Every scenario on every target, ``rounds`` times, rotating the target order."""
        for scenario in scenarios:
            for target in targets:
                self.warm_up(scenario, target)
            for round_ in range(self.config.rounds):
                shift = round_ % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    self.measure(section, scenario, target, round_, **kw)

    def fixed_rate_rounds(
        self, section: str, scenarios: Sequence[Scenario], targets: Sequence[Target]
    ) -> None:
        """:meth:`rounds` in open loop, every target at the same rate per scenario: a
        share of the main walletgate's closed-loop saturation."""
        for scenario in scenarios:
            rate = self.results.throughput(CLOSED, scenario.name, "walletgate")
            rate *= SCALE_RATE_SHARE
            for target in targets:
                self.warm_up(scenario, target)
            for round_ in range(self.config.rounds):
                shift = round_ % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    self.measure(
                        section, scenario, target, round_, rate=rate, rate_basis=SCALE_RATE
                    )

    def open_loop(self, scenarios: Sequence[Scenario], targets: Sequence[Target]) -> None:
        """Latency at half the pass-through's saturation rate; and at a quarter of
        walletgate's own (a rate it carries), with the others at that rate too, so what
        walletgate adds shows even where it cannot carry the first rate."""
        for scenario in scenarios:
            rate = self.results.throughput(CLOSED, scenario.name, "passthrough") / 2
            for target in targets:
                capacity = self.results.throughput(CLOSED, scenario.name, target.info.name)
                if rate > MAX_OPEN_LOAD * capacity:
                    self.results.skipped.append(
                        f"open loop, {scenario.name}, {target.info.name}: {rate:.0f}/s is over "
                        f"{MAX_OPEN_LOAD:.0%} of its saturation ({capacity:.0f}/s)"
                    )
                else:
                    self.measure(OPEN, scenario, target, 0, rate=rate, rate_basis=PASS_RATE)
            walletgate = self.results.throughput(CLOSED, scenario.name, "walletgate")
            for target in targets:
                if target.info.name in ("walletgate", "direct", "passthrough"):
                    self.measure(
                        OPEN,
                        scenario,
                        target,
                        0,
                        rate=walletgate * OWN_RATE_SHARE,
                        rate_basis=OWN_RATE,
                    )

    async def count_store_traffic(self, target: Target, redis_url: str) -> None:
        """Redis round trips and PostgreSQL transactions per request, per scenario."""
        for scenario in SCENARIOS:
            counted = await anatomy.measure(
                target.url,
                target.token,
                scenario.body,
                redis_url=redis_url,
                database_url=target.database_url,
                requests=10 if self.config.smoke else 50,
            )
            self.results.anatomy[scenario.name] = asdict(counted)
            _say(
                f"anatomy {scenario.name:13} Redis {counted.redis_round_trips:.1f} round trips "
                f"({counted.redis_commands:.1f} commands), "
                f"PostgreSQL {counted.postgres_transactions:.1f} write transactions per request"
            )

    def profile_spends(self, target: Target) -> None:
        """py-spy samples of ``target`` while it saturates on allowed spends."""
        found = self._profile(target, ALLOWED_SPEND)
        if found is not None:
            self.results.profile = found

    def profile_reads(self, target: Target) -> None:
        """py-spy samples of ``target`` while it saturates on reads."""
        found = self._profile(target, READS)
        if found is not None:
            self.results.read_profile = found

    def _profile(self, target: Target, scenario: Scenario) -> dict[str, Any] | None:
        if self.tools.py_spy is None:
            return None
        output = self.workdir / f"profile-{scenario.name}.txt"
        seconds = self.config.profile_seconds
        body = self.bodies[scenario.name]
        with _background_wrk(self.tools, target, body, self.config.connections, seconds + 3):
            time.sleep(1.0)  # sample the steady state, not the connection set-up
            profile.record(self.tools.py_spy, target_pid(target), seconds, output)
        summary = profile.summarize(profile.parse_collapsed(output.read_text()))
        _say(f"profile: {summary.samples} samples of {target.info.name} -> {output}")
        return {
            "scenario": scenario.name,
            "target": target.info.name,
            "seconds": seconds,
            "rate_hz": 250,
            "samples": summary.samples,
            "components": summary.components,
            "functions": dict(profile.walletgate_functions(summary, 25)),
            "cross_cutting": summary.cross_cutting,
            "raw": str(output),
        }


def target_pid(target: Target) -> int:
    """The pid of the target's (top) process."""
    return next(iter(target.cpu.groups["proxy"]))


@contextlib.contextmanager
def _background_wrk(
    tools: Tools, target: Target, body: Path, connections: int, seconds: float
) -> Iterator[None]:
    argv = [str(tools.wrk), "-t1", f"-c{connections}", f"-d{round(seconds)}s"]
    argv += ["-s", str(loadgen.LUA_SCRIPT), target.url, "--", str(body), target.token]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.wait(seconds + 30)


def _write_bodies(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for scenario in SCENARIOS:
        path = directory / f"{scenario.name}.json"
        path.write_text(json.dumps(scenario.body, separators=(",", ":")))
        out[scenario.name] = path
    return out


# -- probing ---------------------------------------------------------------------------


async def _probe(target: Target, scenario: Scenario) -> str | None:
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(target.url, json=scenario.body, headers=headers) as response,
    ):
        answer = await response.json(content_type=None)
    check = scenario.check_walletgate if target.walletgate else scenario.check_forwarded
    return check(answer)


async def probe_all(targets: Sequence[Target], scenarios: Sequence[Scenario]) -> None:
    """Every target answers every scenario as it should, or the run stops here."""
    problems = []
    for target in targets:
        for scenario in scenarios:
            problem = await _probe(target, scenario)
            if problem is not None:
                problems.append(f"{target.info.name}, {scenario.name}: {problem}")
    if problems:
        raise SystemExit("bench: targets answered wrongly:\n  " + "\n  ".join(problems))


# -- setting up ------------------------------------------------------------------------


async def _provision(
    store: stores.Stores, deployments: Sequence[Deployment], chain_id: int, prefix: str
) -> dict[str, tuple[str, str]]:
    """A database (and token) per deployment: name -> (database URL, token)."""
    urls: dict[str, str] = {}
    for deployment in deployments:
        if deployment.audit_rows:
            continue
        started = time.monotonic()
        name = f"{prefix}_{deployment.name}"
        urls[deployment.name] = await stores.create_policy_database(
            store, name, deployment.wallets, chain_id
        )
        _say(f"{deployment.label}: policies applied in {time.monotonic() - started:.0f}s")
    for deployment in deployments:
        if deployment.audit_rows:
            source = next(d for d in deployments if d.wallets == deployment.wallets)
            urls[deployment.name] = await stores.clone_database(
                store, f"{prefix}_{source.name}", f"{prefix}_{deployment.name}"
            )
    out = {}
    for deployment in deployments:
        await stores.flush_redis(store.redis_database_url(deployment.redis_db))
        out[deployment.name] = (
            urls[deployment.name],
            await stores.issue_bench_token(urls[deployment.name]),
        )
    return out


def _walletgate_env(
    database_url: str, redis_url: str, backend: str, chain_id: int
) -> dict[str, str]:
    return {
        "WALLETGATE_DATABASE_URL": database_url,
        "WALLETGATE_REDIS_URL": redis_url,
        "WALLETGATE_BACKEND_URL": backend,
        "WALLETGATE_CHAIN_ID": str(chain_id),
        "WALLETGATE_ACTOR": "bench",
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


async def machine_facts(store: stores.Stores, tools: Tools) -> dict[str, Any]:
    """What the numbers were measured on."""
    conn = await asyncpg.connect(store.admin_url)
    try:
        postgres = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
        synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(store.redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    redis_version = (
        f"Valkey {info['valkey_version']}"
        if "valkey_version" in info
        else f"Redis {info.get('redis_version', '?')}"
    )
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {
        name: metadata.version(name)
        for name in ("aiohttp", "redis", "asyncpg", "uvloop", "orjson", "py-spy")
        if _installed(name)
    }
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(memory_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "postgresql": f"{postgres} (fsync {fsync}, synchronous_commit {synchronous_commit})",
        "redis": redis_version,
        "wrk": tool_version([str(tools.wrk), "-v"]),
        "nginx": tool_version([str(tools.nginx), "-v"]) if tools.nginx else "",
        "commit": _git_commit(),
        "load_average_start": os.getloadavg(),
    }


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _git_commit() -> str:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def _cpu_groups(
    proxy: Sequence[int], backend: Sequence[int], store_pids: dict[str, list[int]] | None
) -> CpuGroups:
    groups: dict[str, Sequence[int]] = {"proxy": proxy, "backend": backend}
    if store_pids:
        groups.update({k: v for k, v in store_pids.items() if v})
    return CpuGroups(groups)


def _reference_targets(bench: Run, keep: Keep, chain_id: int) -> services.Service:
    """The stub, nginx (if available) and the aiohttp pass-through; returns the stub."""
    stub = keep(services.start_stub(bench.logs, chain_id))
    bench.add(
        Target(
            TargetInfo("direct", "backend directly (stub)", ("backend",)),
            stub.url,
            CpuGroups({"backend": [stub.pid]}),
            walletgate=False,
        )
    )

    def add_proxy(name: str, label: str, service: services.Service) -> None:
        bench.add(
            Target(
                TargetInfo(name, label, ("proxy", "backend")),
                service.url,
                _cpu_groups([service.pid], [stub.pid], None),
                walletgate=False,
            )
        )

    if bench.tools.nginx is not None:
        nginx = keep(services.start_nginx(bench.logs, stub.url, bench.tools.nginx))
        add_proxy("nginx", "nginx pass-through", nginx)
    # The same event loop as walletgate's (walletgate serve runs on uvloop).
    passthrough = keep(services.start_passthrough(bench.logs, stub.url, "uvloop"))
    add_proxy("passthrough", "aiohttp pass-through", passthrough)
    return stub


def _gateways(
    bench: Run,
    keep: Keep,
    store: stores.Stores,
    deployments: Sequence[Deployment],
    provisioned: dict[str, tuple[str, str]],
    backend: services.Service,
    store_pids: dict[str, list[int]],
) -> dict[str, Target]:
    """One walletgate per deployment, and the main one again with ``--workers``; all
    started together (large policy sets compile meanwhile), returned once listening."""
    config = bench.config
    launched: list[tuple[services.Service, int]] = []
    gateways: dict[str, Target] = {}
    groups = ("proxy", "backend", *(k for k, v in store_pids.items() if v))
    for deployment in deployments:
        database_url, token = provisioned[deployment.name]
        env = _walletgate_env(
            database_url,
            store.redis_database_url(deployment.redis_db),
            backend.url,
            config.chain_id,
        )
        variants = [(deployment.name, 1)]
        if deployment.wallets == config.main_wallets and not deployment.audit_rows:
            variants.append((f"{deployment.name}-x{config.workers}", config.workers))
        for name, workers in variants:
            service = keep(services.launch_walletgate(name, bench.logs, env, workers))
            launched.append((service, workers))
            label = deployment.label + (f", {workers} workers" if workers > 1 else "")
            gateways[name] = Target(
                TargetInfo(name, label, groups),
                service.url,
                _cpu_groups([service.pid], [backend.pid], store_pids),
                walletgate=True,
                token=token,
                database_url=database_url,
            )
    for service, workers in launched:
        services.wait_for_text(service, services.walletgate_ready_text(workers))
    _say(f"{len(launched)} gateways listening")
    return gateways


def _fill_audit_tables(
    deployments: Sequence[Deployment], provisioned: dict[str, tuple[str, str]]
) -> None:
    for deployment in deployments:
        if deployment.audit_rows:
            started = time.monotonic()
            count = asyncio.run(
                stores.fill_audit(
                    provisioned[deployment.name][0], deployment.audit_rows, deployment.wallets
                )
            )
            _say(f"{deployment.label}: {count:,} audit rows ({time.monotonic() - started:.0f}s)")


def _time_decisions(bench: Run) -> None:
    _say("timing the decision (decode + evaluate) under every policy set size")
    config = bench.config
    sets = decision.compile_sets(config.wallets, config.chain_id)
    costs = decision.decision_costs(
        sets, SPEND_SCENARIOS, config.chain_id, count=200 if config.smoke else 2000
    )
    bench.results.decisions = {str(w): c for w, c in costs.items()}


def run(config: BenchConfig, workdir: Path) -> Results:
    """Run the whole bench in ``workdir`` (logs, bodies, profile); return the results."""
    started = time.monotonic()
    tools = ensure_tools(want_nginx=config.nginx)
    bench = Run(config, workdir, tools)
    deployments = deployments_for(config)
    prefix = f"wg_bench_{os.getpid()}"
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(stores.bench_stores(workdir))
        stack.callback(
            lambda: asyncio.run(
                stores.drop_databases(store, [f"{prefix}_{d.name}" for d in deployments])
            )
        )
        bench.results.machine = asyncio.run(machine_facts(store, tools))
        store_pids = asyncio.run(stores.server_pids(store))

        def keep(service: services.Service) -> services.Service:
            stack.callback(services.stop, service)
            return service

        stub = _reference_targets(bench, keep, config.chain_id)
        provisioned = asyncio.run(_provision(store, deployments, config.chain_id, prefix))
        gateways = _gateways(bench, keep, store, deployments, provisioned, stub, store_pids)
        main_name = f"w{config.main_wallets}"
        main = gateways[main_name]
        main.info = TargetInfo("walletgate", main.info.label, main.info.groups)
        bench.add(main)
        for name, gateway in gateways.items():
            if name != main_name:
                bench.add(gateway)
        asyncio.run(probe_all(list(bench.targets.values()), SCENARIOS))
        _fill_audit_tables(deployments, provisioned)
        _time_decisions(bench)
        main_deployment = next(d for d in deployments if d.name == main_name)
        asyncio.run(
            bench.count_store_traffic(main, store.redis_database_url(main_deployment.redis_db))
        )
        generator_ceiling = loadgen.python_generator_ceiling(
            stub.url, bench.bodies[READS.name], seconds=config.seconds
        )
        bench.results.calibration["python_generator_ceiling"] = generator_ceiling.throughput

        matrix = [t for name, t in bench.targets.items() if name in MATRIX_TARGETS]
        bench.rounds(CLOSED, SCENARIOS, matrix)
        bench.open_loop(SCENARIOS, matrix)
        scale = [main if d.name == main_name else gateways[d.name] for d in deployments]
        bench.fixed_rate_rounds(SCALE, SPEND_SCENARIOS, scale)
        bench.rounds(
            WORKERS,
            (READS, ALLOWED_SPEND),
            [main, gateways[f"{main_name}-x{config.workers}"]],
            connections=2 * config.connections,
        )
        bench.profile_spends(main)
        bench.profile_reads(main)
        bench.results.machine["load_average_end"] = os.getloadavg()
        bench.results.machine["wall_seconds"] = round(time.monotonic() - started)
    return bench.results
