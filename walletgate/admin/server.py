"""Starting the admin API's listener inside a gateway process.

Every gateway process (each worker of ``serve --workers N``) serves the admin API on
``admin_host:admin_port`` with ``SO_REUSEPORT``, like the main port: the kernel spreads
connections over the workers, and the API keeps working while any of them lives.
Nothing the API does depends on which process answers: it acts on PostgreSQL and Redis,
and announces changes the way the CLI does.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.log import access_logger

from walletgate.admin.app import build_admin_app
from walletgate.config.settings import Settings
from walletgate.proxy.log_redaction import RedactingAccessLogger
from walletgate.storage.runtime import Stores


async def start_admin(settings: Settings, stores: Stores) -> web.AppRunner | None:
    """Listen for the admin API on connected ``stores``; ``None`` when ``admin_port`` is
    0 (off). The caller calls ``cleanup()`` on the returned runner to stop it."""
    if settings.admin_port == 0:
        return None
    runner = web.AppRunner(
        build_admin_app(stores, settings),
        access_log_class=RedactingAccessLogger,
        access_log=access_logger if settings.access_log else None,
        handle_signals=False,
        keepalive_timeout=settings.keepalive_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.admin_host, settings.admin_port, reuse_port=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    print(
        f"walletgate admin API on http://{settings.admin_host}:{settings.admin_port}/",
        flush=True,
    )
    return runner
