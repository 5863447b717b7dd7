"""Micro benchmark of the audit log's group commit (``walletgate.storage.audit``).

Not part of ``python -m bench``: it drives :class:`AuditWriter` alone, the way the spend
path does (``insert`` of the intent row, then ``update`` with the outcome), with many
spends in flight, against a real PostgreSQL, and reports spends per second, the
gateway process's CPU per spend and the PostgreSQL backend's CPU per spend (from
``/proc/<pid>/stat`` of the one pooled connection: run it on the database's machine).

To compare two versions of the writer side by side, pass the other one's source file
with ``--compare``; rounds alternate between the two (the order rotates each round), so
a drift of a shared machine hits both alike::

    git show HEAD~1:walletgate/storage/audit.py > /tmp/audit_before.py
    python -m bench.audit_writer --compare /tmp/audit_before.py --rounds 5

The server is ``WALLETGATE_BENCH_DATABASE_URL`` (a user that may create databases) or
``--database-url``; a scratch database is created, migrated and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from walletgate.storage import audit as current_audit
from walletgate.storage.migrations import apply_migrations

DATABASE_URL_ENV = "WALLETGATE_BENCH_DATABASE_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_TICKS = os.sysconf("SC_CLK_TCK")


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _load(path: Path) -> ModuleType:
    """Another version of ``walletgate/storage/audit.py``, as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"_audit_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _record(module: ModuleType, index: int) -> Any:
    """An allowed spend's intent row, shaped like proxy.answers.audit_record makes it."""
    return module.AuditRecord(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        method="eth_sendTransaction",
        request={
            "jsonrpc": "2.0",
            "id": index,
            "method": "eth_sendTransaction",
            "params": [
                {
                    "from": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
                    "to": "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf",
                    "value": "0x3b9aca00",
                    "gas": "0x5208",
                }
            ],
        },
        decision="allow",
        reason="allowed",
        status="pending",
        agent_id="bot",
        wallet_id="w1",
        owner_id="acme",
        chain_id=1337,
        intents=[
            {
                "kind": "transfer",
                "asset": "eth",
                "amount": "1000000000",
                "to": "0x2b5ad5c4795c026514f8317c7a215e218dccd6cf",
            }
        ],
        explanation={"outcome": "allow", "reason": "allowed", "rules": ["per_tx_cap", "daily"]},
        amounts={"eth": 10**9},
        usd_value=Decimal("0.000003"),
        claims=[
            {"scope": "wallet:w1", "window": "day", "asset": "usd", "units": "3"},
            {"scope": "agent:bot", "window": "day", "asset": "usd", "units": "3"},
        ],
        timings={"decide_ms": 0.412},
    )


@dataclass
class Measurement:
    name: str
    spends: int
    seconds: float
    client_cpu: float
    backend_cpu: float

    @property
    def rate(self) -> float:
        return self.spends / self.seconds

    @property
    def client_us(self) -> float:
        return self.client_cpu / self.spends * 1e6

    @property
    def backend_us(self) -> float:
        return self.backend_cpu / self.spends * 1e6


async def _measure(
    name: str, module: ModuleType, pool: asyncpg.Pool, backend_pid: int, args: argparse.Namespace
) -> Measurement:
    # No TRUNCATE between measurements: it would leave PostgreSQL planning the next
    # statements for an empty table, which a deployment never sees. The table grows by
    # the same rows for every version, in alternating order.
    writer = module.AuditWriter(pool, max_batch=args.max_batch)
    await writer.start()
    # Records are built before the clock starts: only the writer is measured.
    records = [_record(module, i) for i in range(args.spends)]
    queue = iter(records)

    async def agent() -> None:
        for record in queue:
            await writer.insert(record)
            writer.update(
                module.AuditOutcome(
                    record.id,
                    "committed",
                    datetime.now(UTC),
                    tx_hash="0x" + record.id.hex * 2,
                    timings={"backend_ms": 0.3},
                )
            )

    backend_before = _cpu_seconds(backend_pid)
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(agent() for _ in range(args.concurrency)))
    await writer.close()  # the outcomes still queued are part of the work
    seconds = time.perf_counter() - started
    client = time.process_time() - client_before
    backend = _cpu_seconds(backend_pid) - backend_before
    settled = await pool.fetchval(
        "SELECT count(*) FROM transactions WHERE status = 'committed' AND id = ANY($1)",
        [r.id for r in records],
    )
    assert settled == args.spends, f"{name}: {settled} of {args.spends} rows settled"
    return Measurement(name, args.spends, seconds, client, backend)


async def main(args: argparse.Namespace) -> None:
    versions = [("current", current_audit)]
    if args.compare is not None:
        versions.insert(0, (args.compare.stem, _load(args.compare)))
    server = args.database_url
    name = f"wg_auditbench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_database(server, name)
        await apply_migrations(url)
        settings = {"synchronous_commit": "off"} if args.async_commit else {}
        async with asyncpg.create_pool(
            url, min_size=1, max_size=1, max_queries=10**9, server_settings=settings
        ) as pool:
            await pool.execute(
                """INSERT INTO owners (id) VALUES ('acme');
                   INSERT INTO agents (id, owner_id) VALUES ('bot', 'acme');
                   INSERT INTO wallets (id, owner_id, agent_id, address, chain_id) VALUES
                   ('w1', 'acme', 'bot', '0x7e5f4552091a69125d5dfcb7b8c2659029395bdf', 1337)"""
            )
            if args.prefill:
                # Rows like the ones measured, spread over a month, as a live table holds.
                await pool.execute(
                    f"""INSERT INTO transactions (id, created_at, agent_id, wallet_id,
                            owner_id, chain_id, method, request, intents, decision, reason,
                            explanation, status, amounts, usd_value, claims, timings,
                            settled_at, tx_hash)
                        SELECT gen_random_uuid(), now() - i * interval '1 s', 'bot', 'w1',
                               'acme', 1337, 'eth_sendTransaction',
                               '{{"jsonrpc":"2.0","id":1,"method":"eth_sendTransaction"}}',
                               '[]', 'allow', 'allowed', '{{}}', 'committed',
                               '{{"eth":"1000000000"}}', 0.000003, '[]', '{{}}', now(), NULL
                          FROM generate_series(1, {int(args.prefill)}) AS i"""
                )
                await pool.execute("VACUUM ANALYZE transactions")
            backend_pid = await pool.fetchval("SELECT pg_backend_pid()")
            results: dict[str, list[Measurement]] = {n: [] for n, _ in versions}
            for n, module in versions:  # warm-up: prepared statements, type introspection
                await _measure(n, module, pool, backend_pid, args)
            for round_index in range(args.rounds):
                shift = round_index % len(versions)
                for n, module in versions[shift:] + versions[:shift]:
                    m = await _measure(n, module, pool, backend_pid, args)
                    results[n].append(m)
                    print(
                        f"round {round_index + 1} {n:>14}: {m.rate:8.0f} spends/s  "
                        f"gateway {m.client_us:6.1f} µs/spend  "
                        f"postgres backend {m.backend_us:6.1f} µs/spend",
                        flush=True,
                    )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(
        f"\nmedians over {args.rounds} rounds, {args.spends} spends each "
        f"(insert + outcome), {args.concurrency} in flight, max_batch {args.max_batch}, "
        f"synchronous_commit {'off' if args.async_commit else 'as configured'}, "
        f"{args.prefill} rows before:"
    )
    for n, ms in results.items():
        print(
            f"{n:>14}: {statistics.median(m.rate for m in ms):8.0f} spends/s  "
            f"gateway {statistics.median(m.client_us for m in ms):6.1f} µs/spend  "
            f"postgres backend {statistics.median(m.backend_us for m in ms):6.1f} µs/spend"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_writer", description=__doc__)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(DATABASE_URL_ENV, DEFAULT_URL),
        help=f"a server URL whose user may create databases (default: ${DATABASE_URL_ENV} "
        f"or {DEFAULT_URL})",
    )
    parser.add_argument("--spends", type=int, default=5000, help="spends per measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="spends in flight")
    parser.add_argument("--max-batch", type=int, default=256, help="AuditWriter's max_batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--prefill",
        type=int,
        default=100_000,
        help="rows in the audit table before measuring (then VACUUM ANALYZE; 0: a new "
        "deployment's empty table)",
    )
    parser.add_argument(
        "--compare", type=Path, help="another audit.py to measure side by side with this one"
    )
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="synchronous_commit off for the writer's connection: the statements' cost "
        "without the wait for the WAL flush",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
