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
import os
import time
from pathlib import Path

from bench import decision, loadgen, services, stores
from bench.config import BenchConfig, deployments_for
from bench.deploy import fill_audit_tables, provision, start_gateways, start_reference_targets
from bench.machine import machine_facts
from bench.measure import Run
from bench.progress import say
from bench.results import CLOSED, SCALE, WORKERS, Results, TargetInfo
from bench.scenarios import ALLOWED_SPEND, READS, SCENARIOS, SPEND_SCENARIOS
from bench.targets import probe_all
from bench.tools import ensure_tools

#: The targets every scenario runs against, side by side.
MATRIX_TARGETS = ("direct", "nginx", "passthrough", "walletgate")


def _time_decisions(bench: Run) -> None:
    """Time the pure decision under every policy set size, in-process."""
    say("timing the decision (decode + evaluate) under every policy set size")
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

        stub = start_reference_targets(bench, keep, config.chain_id)
        provisioned = asyncio.run(provision(store, deployments, config.chain_id, prefix))
        gateways = start_gateways(bench, keep, store, deployments, provisioned, stub, store_pids)
        main_name = f"w{config.main_wallets}"
        main = gateways[main_name]
        main.info = TargetInfo("walletgate", main.info.label, main.info.groups)
        bench.add(main)
        for name, gateway in gateways.items():
            if name != main_name:
                bench.add(gateway)
        asyncio.run(probe_all(list(bench.targets.values()), SCENARIOS))
        fill_audit_tables(deployments, provisioned)
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
