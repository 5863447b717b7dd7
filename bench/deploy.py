"""Setting up a bench run's targets: a database per deployment, the stub backend and
the pass-throughs, one walletgate per deployment, the filled audit tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from bench import services, stores
from bench.config import Deployment
from bench.measure import Run
from bench.procstat import CpuGroups
from bench.progress import say
from bench.results import TargetInfo
from bench.targets import Target

#: Registers a started service to be stopped when the run ends; returns it.
Keep = Callable[[services.Service], services.Service]


async def provision(
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
        say(f"{deployment.label}: policies applied in {time.monotonic() - started:.0f}s")
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


def _cpu_groups(
    proxy: Sequence[int], backend: Sequence[int], store_pids: dict[str, list[int]] | None
) -> CpuGroups:
    groups: dict[str, Sequence[int]] = {"proxy": proxy, "backend": backend}
    if store_pids:
        groups.update({k: v for k, v in store_pids.items() if v})
    return CpuGroups(groups)


def start_reference_targets(bench: Run, keep: Keep, chain_id: int) -> services.Service:
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


def start_gateways(
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
    say(f"{len(launched)} gateways listening")
    return gateways


def fill_audit_tables(
    deployments: Sequence[Deployment], provisioned: dict[str, tuple[str, str]]
) -> None:
    """Fill the audit table of each deployment that has audit rows."""
    for deployment in deployments:
        if deployment.audit_rows:
            started = time.monotonic()
            count = asyncio.run(
                stores.fill_audit(
                    provisioned[deployment.name][0], deployment.audit_rows, deployment.wallets
                )
            )
            say(f"{deployment.label}: {count:,} audit rows ({time.monotonic() - started:.0f}s)")
