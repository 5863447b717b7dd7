"""The owner console in a real headless Chromium (Debian's), against a gateway, the
devnet, PostgreSQL and Redis.

- an agent's spend is held; the owner signs in, sees it decoded, approves it: mined;
- a rejected one is never mined; a stale row (decided elsewhere) is refused with 409;
- the kill switch (confirmed) refuses the agent's next spend;
- an owner-scoped session cannot see another owner's wallets;
- a change without the CSRF token is refused (403);
- the policies page plans and applies a document.

With WALLETGATE_TEST_CONSOLE_SCREENSHOTS=1 each page is saved under docs/console/.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from playwright.async_api import Browser, Page, async_playwright

from tests.support.devnet import Devnet
from tests.support.fleet import Fleet, running_fleet
from tests.support.gateway import free_port, issue_token
from tests.support.spender_fleet import FEE, WALLET, flush_redis, fresh_recipient, transfer

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH = 10**18
HELD = 6 * ETH // 10  # above the "big" tier: held for the owner
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "console"
APPROVER_KEY = "0x" + (9).to_bytes(32, "big").hex()
RIVAL_WALLET = str(Account.from_key("0x" + (7).to_bytes(32, "big").hex()).address).lower()
SPARE_WALLET = str(Account.from_key("0x" + (4).to_bytes(32, "big").hex()).address).lower()
_KEY = re.compile(r"wga_[A-Za-z0-9_-]{43}")


def document(chain_id: int, daily: str = "20") -> str:
    return f"""version: 1
owners: [{{id: ops}}, {{id: rivals}}]
agents:
  - {{id: spender, owner: ops}}
  - {{id: helper, owner: ops}}
  - {{id: rival-bot, owner: rivals}}
wallets:
  - {{id: hot, owner: ops, agent: spender, chain: {chain_id}, address: "{WALLET}"}}
  - {{id: spare, owner: ops, agent: helper, chain: {chain_id}, address: "{SPARE_WALLET}"}}
  - {{id: cold, owner: rivals, agent: rival-bot, chain: {chain_id}, address: "{RIVAL_WALLET}"}}
assets:
  - id: eth
    chain: {chain_id}
    native: true
    symbol: ETH
    decimals: 18
    price_usd: "3000.00"
    price_as_of: "2026-11-01T00:00:00Z"
    price_max_age: 3650d
policies:
  - id: budget
    wallet: hot
    rules:
      - {{id: daily, type: cumulative_cap, asset: eth, max: "{daily}", window: 24h, scope: wallet}}
      - id: big
        type: tier
        asset: eth
        above: "0.5"
        action: require_approval
        approval_timeout: 10m
  - id: spare-budget
    wallet: spare
    rules:
      - {{id: spare-daily, type: cumulative_cap, asset: eth, max: "1", window: 24h, scope: wallet}}
  - id: rival-budget
    wallet: cold
    rules:
      - {{id: small, type: cumulative_cap, asset: eth, max: "1", window: 24h, scope: wallet}}
"""


@pytest_asyncio.fixture(scope="module")
async def fleet(
    postgres_server_url: str, migrated_template: str, redis_server_url: str, devnet: Devnet
) -> AsyncIterator[Fleet]:
    await flush_redis(redis_server_url)
    async with running_fleet(
        postgres_server_url=postgres_server_url,
        migrated_template=migrated_template,
        redis_url=redis_server_url,
        backend_url=devnet.url,
        chain_id=devnet.chain_id,
        document=document(devnet.chain_id),
        agent="spender",
        count=1,
        extra_env={"WALLETGATE_ADMIN_PORT": str(free_port())},
    ) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


def console_url(fleet: Fleet) -> str:
    return f"http://127.0.0.1:{fleet.env['WALLETGATE_ADMIN_PORT']}/console"


def issue_key(fleet: Fleet, owner: str | None) -> str:
    args = ["admin-keys", "issue"] + (["--operator"] if owner is None else ["--owner", owner])
    found = _KEY.search(fleet.cli(*args).stdout)
    assert found
    return found.group(0)


async def shot(page: Page, name: str) -> None:
    """Save the page for docs/console.md when asked to."""
    if os.environ.get("WALLETGATE_TEST_CONSOLE_SCREENSHOTS") == "1":
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def signed_in(browser: Browser, fleet: Fleet, key: str, **options: Any) -> Page:
    context = await browser.new_context(**options)
    page = await context.new_page()
    await page.goto(f"{console_url(fleet)}/approvals")
    assert page.url.endswith("/console/signin")  # no session yet
    await page.get_by_label("Admin key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/approvals")
    return page


async def hold(fleet: Fleet, recipient: str) -> str:
    reply = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, HELD))
    assert reply.get("error", {}).get("data", {}).get("decision") == "hold", reply
    approval_id: str = reply["error"]["data"]["approval_id"]
    return approval_id


async def approval_status(fleet: Fleet, approval_id: str, *wanted: str) -> str:
    for _ in range(600):
        rows = await fleet.rows("SELECT status FROM approvals WHERE id = $1", approval_id)
        if rows[0]["status"] in wanted:
            return str(rows[0]["status"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"approval {approval_id} never became {wanted}")


def card(page: Page, approval_id: str) -> Any:
    return page.locator(f'[data-approval="{approval_id}"]')


async def test_held_spend_decoded_approved_and_mined(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    recipient = fresh_recipient()
    approval_id = await hold(fleet, recipient)
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    row = card(page, approval_id)
    text = await row.inner_text()
    # What it sends, and what was judged: the value plus the most the network fee costs.
    at_stake = ("0.600042 ETH", "600042000000000000 base units", "$1,800.13")
    for expected in ("0.6 ETH", str(HELD), *at_stake, "hot", "spender", "big", "budget", recipient):
        assert expected.lower() in text.lower(), (expected, text)
    assert "Time left" in text and "min" in text
    await shot(page, "approvals")
    phone = await signed_in(
        browser, fleet, issue_key(fleet, "ops"), viewport={"width": 390, "height": 844}
    )
    await shot(phone, "approvals-phone")
    await phone.context.close()
    await row.get_by_label("Reason").fill("expected invoice")
    await row.get_by_role("button", name="Approve").click()
    await page.wait_for_url("**/console/approvals")
    assert await approval_status(fleet, approval_id, "executed", "failed", "unknown") == "executed"
    for _ in range(600):
        if await devnet.balance(recipient) == HELD:
            break
        await asyncio.sleep(0.1)
    assert await devnet.balance(recipient) == HELD
    await page.reload()
    assert await card(page, approval_id).count() == 0  # no longer waiting
    await shot(page, "approvals-decided")
    await page.goto(f"{console_url(fleet)}/audit?decision=hold")
    audit = await page.locator("main").inner_text()
    assert "0.600042 ETH" in audit and "$1,800.13" in audit and "rule 'big'" in audit
    await page.locator("details summary").first.click()
    await shot(page, "audit")
    await page.context.close()


async def test_reject_is_never_mined_and_a_stale_row_is_refused(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, None))
    rejected_to, stale_to = fresh_recipient(), fresh_recipient()
    rejected, stale = await hold(fleet, rejected_to), await hold(fleet, stale_to)
    await page.reload()
    row = card(page, rejected)
    await row.get_by_label("Reason").fill("not ours")
    await row.get_by_role("button", name="Reject").click()
    await page.wait_for_url("**/console/approvals")
    assert await approval_status(fleet, rejected, "rejected") == "rejected"
    rows = await fleet.rows(
        "SELECT t.status FROM approvals a JOIN transactions t ON t.id = a.transaction_id"
        " WHERE a.id = $1",
        rejected,
    )
    assert rows[0]["status"] == "refunded"
    assert await devnet.balance(rejected_to) == 0

    # Another owner decides the row this page still shows: acting on it is refused.
    fleet.cli("approvals", "reject", stale, "--reason", "decided elsewhere")
    await card(page, stale).locator(".alert").wait_for()  # the poll marked it stale
    response = await page.evaluate(
        """async ([url, csrf]) => {
            const body = new URLSearchParams({csrf_token: csrf, seen_status: "pending"});
            const r = await fetch(url, {method: "POST", body});
            return [r.status, await r.text()];
        }""",
        [
            f"{console_url(fleet)}/approvals/{stale}/approve",
            await page.locator('input[name="csrf_token"]').first.input_value(),
        ],
    )
    assert response[0] == 409 and "is rejected now" in response[1], response
    assert await devnet.balance(stale_to) == 0
    await page.context.close()


async def test_kill_switch_refuses_the_agents_next_spend(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    await page.goto(f"{console_url(fleet)}/freezes")
    await page.get_by_label("Agent", exact=True).first.check()
    await page.locator("select[name=agent_target]").select_option("spender")
    await page.get_by_label("Reason (recorded)").fill("leaked token")
    await page.get_by_role("button", name="Freeze…").click()
    await page.wait_for_url("**/console/freezes/confirm")
    await shot(page, "kill-switch-confirm")
    await page.get_by_role("button", name="Yes, freeze agent spender").click()
    await page.wait_for_url("**/console/freezes")
    assert "agent spender" in await page.locator(".frozen").inner_text()
    await shot(page, "kill-switch")

    recipient = fresh_recipient()
    reply = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, ETH // 100))
    assert "error" in reply and reply["error"]["data"]["decision"] == "deny", reply
    assert "frozen" in reply["error"]["message"].lower(), reply
    assert await devnet.balance(recipient) == 0

    await page.get_by_role("button", name="Unfreeze…").click()
    await page.get_by_role("button", name="Yes, unfreeze agent spender").click()
    await page.wait_for_url("**/console/freezes")
    assert "Nothing is frozen" in await page.locator(".frozen").inner_text()
    await page.context.close()


def spare_transfer(recipient: str, wei: int) -> list[Any]:
    """``transfer`` from the helper agent's wallet."""
    params = transfer(recipient, wei)
    params[0]["from"] = SPARE_WALLET
    return params


async def test_the_owner_kill_switch_freezes_each_of_its_agents_at_once(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    helper = dataclasses.replace(fleet, token=issue_token("helper", fleet.env))
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    await page.goto(f"{console_url(fleet)}/freezes")
    await page.get_by_label("Owner (each of its agents and wallets)").check()
    await page.get_by_label("Reason (recorded)").fill("owner away")
    await page.get_by_role("button", name="Freeze…").click()
    await page.get_by_role("button", name="Yes, freeze owner ops").click()
    await page.wait_for_url("**/console/freezes")
    frozen = await page.locator(".frozen").inner_text()
    for target in ("agent spender", "agent helper", "wallet hot", "wallet spare"):
        assert target in frozen, frozen
    assert "rival" not in frozen and "cold" not in frozen
    rows = await fleet.rows("SELECT scope, target FROM freezes WHERE unfrozen_at IS NULL")
    assert sorted((r["scope"], r["target"]) for r in rows) == [
        ("agent", "helper"),
        ("agent", "spender"),
        ("wallet", "hot"),
        ("wallet", "spare"),
    ]
    recipient = fresh_recipient()
    for agent, params in (
        (fleet, transfer(recipient, ETH // 100)),
        (helper, spare_transfer(recipient, ETH // 100)),
    ):
        reply = await agent.rpc(0, "eth_sendTransaction", params)
        assert reply["error"]["data"]["decision"] == "deny", reply
        assert "frozen" in reply["error"]["message"].lower(), reply
    assert await devnet.balance(recipient) == 0

    # Lifting it is one switch too.
    await page.get_by_label("Owner (each of its agents and wallets)").check()
    await page.get_by_label("Reason (recorded)").fill("back")
    await page.get_by_role("button", name="Lift…").click()
    await page.get_by_role("button", name="Yes, unfreeze owner ops").click()
    await page.wait_for_url("**/console/freezes")
    assert "Nothing is frozen" in await page.locator(".frozen").inner_text()
    await page.context.close()


async def test_the_audit_search_runs_in_the_query_over_every_page(
    fleet: Fleet, browser: Browser
) -> None:
    recipient = fresh_recipient()
    for _ in range(51):  # over the 24h cap: denied, nothing forwarded
        reply = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, 30 * ETH))
        assert reply["error"]["data"]["decision"] == "deny", reply
    for _ in range(600):  # the audit writer batches
        rows = await fleet.rows(
            "SELECT count(*) AS n FROM transactions WHERE request::text ILIKE $1",
            f"%{recipient[2:]}%",
        )
        if rows[0]["n"] == 51:
            break
        await asyncio.sleep(0.1)
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    await page.goto(f"{console_url(fleet)}/audit")
    await page.get_by_label("Search").fill(recipient.upper().replace("0X", "0x"))
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/console/audit?**")
    assert await page.locator(".cards > li.tx").count() == 50
    await page.get_by_role("link", name="Older").click()
    assert await page.locator(".cards > li.tx").count() == 1
    assert recipient in page.url.lower() or "q=" in page.url  # the filter is kept
    assert await page.get_by_role("link", name="Older").count() == 0
    await page.goto(f"{console_url(fleet)}/audit?q=no-such-thing-{recipient[2:10]}")
    assert "No decisions match" in await page.locator(".cards").inner_text()
    await page.context.close()


async def todays_spending(page: Page, fleet: Fleet) -> int:
    await page.goto(f"{console_url(fleet)}/spending")
    chart = page.locator('figure.chart[data-wallet="hot"][data-asset="eth"]')
    if await chart.count() == 0:
        return 0
    today = datetime.now(UTC).date().isoformat()
    row = chart.locator("tbody tr").last
    assert await row.locator("th").text_content() == today  # in a closed <details>
    return int(await row.locator("td").nth(1).text_content() or "")


async def test_the_spending_chart_shows_a_spend_made_now(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    before = await todays_spending(page, fleet)
    recipient = fresh_recipient()
    reply = await fleet.rpc(0, "eth_sendTransaction", transfer(recipient, ETH // 100))
    assert "result" in reply, reply
    for _ in range(600):  # the audit writer batches
        after = await todays_spending(page, fleet)
        if after != before:
            break
        await asyncio.sleep(0.1)
    # The transfer and its network fee (fees are spending), exactly, in base units.
    assert ETH // 100 < after - before <= ETH // 100 + FEE, (before, after)
    chart = page.locator('figure.chart[data-wallet="hot"][data-asset="eth"]')
    assert "ETH spent by wallet hot per day" in (await chart.locator("desc").text_content() or "")
    assert await chart.locator("rect.day-bar").count() == 14
    assert "rivals" not in await page.locator("main").inner_text()
    await page.context.close()


async def test_an_owner_session_sees_only_its_owners_objects(
    fleet: Fleet, browser: Browser
) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    await page.goto(f"{console_url(fleet)}/spending")
    text = await page.locator("main").inner_text()
    assert "hot" in text and "spender" in text and "daily" in text
    assert "cold" not in text and "rival" not in text
    await shot(page, "spending")
    await page.goto(f"{console_url(fleet)}/freezes")
    assert "cold" not in await page.locator("main").inner_text()
    response = await page.goto(f"{console_url(fleet)}/audit?owner=rivals")
    assert response is not None and response.status == 403
    response = await page.goto(f"{console_url(fleet)}/audit?wallet=cold")
    assert response is not None and "cold" not in await page.locator(".cards").inner_text()
    await page.context.close()


async def test_a_change_without_the_csrf_token_is_refused(fleet: Fleet, browser: Browser) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
    url = f"{console_url(fleet)}/freezes/do"
    form = {"confirmed": "yes", "verb": "freeze", "scope": "agent", "target": "spender"}
    for extra in ({}, {"csrf_token": "forged"}):
        status = await page.evaluate(
            """async ([url, form]) => (await fetch(url, {
                method: "POST", body: new URLSearchParams(form)})).status""",
            [url, {**form, **extra}],
        )
        assert status == 403
    assert await fleet.rows("SELECT 1 FROM freezes WHERE unfrozen_at IS NULL") == []
    await page.context.close()


async def test_policies_plan_and_apply(fleet: Fleet, devnet: Devnet, browser: Browser) -> None:
    page = await signed_in(browser, fleet, issue_key(fleet, None))
    await page.goto(f"{console_url(fleet)}/policies")
    assert "cumulative_cap" in await page.get_by_label("Current document").input_value()
    await shot(page, "policies")
    await page.get_by_label("New document (YAML)").fill(document(devnet.chain_id, daily="25"))
    await page.get_by_role("button", name="Plan").click()
    await page.wait_for_url("**/console/policies/plan")
    diff = await page.locator(".diff").all_inner_texts()
    assert any("budget" in d for d in diff), diff
    await shot(page, "policies-plan")
    await page.get_by_role("button", name="Apply").click()
    assert "is in force" in await page.locator("main").inner_text()
    await page.goto(f"{console_url(fleet)}/spending")
    assert "of 25 ETH" in await page.locator("main").inner_text()
    await page.context.close()


async def test_an_owner_signature_approval_is_signed_in_the_page(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    approver = Account.from_key(APPROVER_KEY).address
    fleet.cli("approvals", "approver", "ops", approver)
    try:
        recipient = fresh_recipient()
        approval_id = await hold(fleet, recipient)
        page = await signed_in(browser, fleet, issue_key(fleet, "ops"))
        await card(page, approval_id).get_by_role("link", name=re.compile("Details")).click()
        await page.wait_for_url(f"**/console/approvals/{approval_id}")
        typed = json.loads(await page.get_by_label("Typed data to sign").input_value())
        assert typed["message"]["approvalId"] == approval_id
        # Without the signature the service refuses (403), and nothing moves.
        await page.get_by_role("button", name="Approve").click()
        assert "Refused (403)" in await page.locator("h1").inner_text()
        await page.go_back()
        await page.reload()
        typed = json.loads(await page.get_by_label("Typed data to sign").input_value())
        signature = Account.sign_message(encode_typed_data(full_message=typed), APPROVER_KEY)
        await page.get_by_label("Signature").fill("0x" + bytes(signature.signature).hex())
        await shot(page, "approval-signature")
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_url("**/console/approvals")
        assert await approval_status(fleet, approval_id, "executed", "failed") == "executed"
        for _ in range(600):
            if await devnet.balance(recipient) == HELD:
                break
            await asyncio.sleep(0.1)
        assert await devnet.balance(recipient) == HELD
        await page.context.close()
    finally:
        fleet.cli("approvals", "approver", "ops", "--clear")


async def wallet_challenge(browser: Browser, fleet: Fleet, owner: str) -> Page:
    """A fresh browser at the wallet sign-in page of ``owner``'s approver."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{console_url(fleet)}/signin")
    await page.get_by_label("Owner id").fill(owner)
    await page.get_by_role("button", name="Get the message to sign").click()
    await page.wait_for_url("**/console/signin/challenge")
    return page


def personal_sign(message: str, key: str) -> str:
    signed = Account.sign_message(encode_defunct(text=message), key)
    return "0x" + bytes(signed.signature).hex()


async def test_the_owners_approver_signs_in_with_a_siwe_message(
    fleet: Fleet, devnet: Devnet, browser: Browser
) -> None:
    approver = Account.from_key(APPROVER_KEY).address
    fleet.cli("approvals", "approver", "ops", approver)
    try:
        page = await wallet_challenge(browser, fleet, "rivals")  # no approver registered
        assert "has no approver address" in await page.get_by_role("alert").inner_text()
        await page.context.close()

        page = await wallet_challenge(browser, fleet, "ops")
        message = await page.get_by_label("Message to sign").input_value()
        host = console_url(fleet).split("/")[2]
        assert message.startswith(f"{host} wants you to sign in with your Ethereum account:\n")
        assert f"\n{approver}\n" in message and "Nonce: " in message
        assert "Expiration Time: " in message
        # Another key's signature is refused, and burns the nonce.
        other = "0x" + (8).to_bytes(32, "big").hex()
        await page.get_by_label("Signature").fill(personal_sign(message, other))
        await page.get_by_role("button", name="Sign in", exact=True).click()
        assert "not by owner ops's approver" in await page.get_by_role("alert").inner_text()
        assert not any(c["name"] == "wg_console" for c in await page.context.cookies())
        await page.context.close()

        page = await wallet_challenge(browser, fleet, "ops")
        message = await page.get_by_label("Message to sign").input_value()
        nonce = await page.locator("input[name=nonce]").input_value()
        signature = personal_sign(message, APPROVER_KEY)
        await page.get_by_label("Signature").fill(signature)
        await shot(page, "signin-wallet")
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await page.wait_for_url("**/console/approvals")
        await page.goto(f"{console_url(fleet)}/freezes")
        text = await page.locator("main").inner_text()
        assert "spender" in text and "cold" not in text and "rival" not in text
        response = await page.goto(f"{console_url(fleet)}/audit?owner=rivals")
        assert response is not None and response.status == 403
        await page.context.close()

        # The same nonce and signature again: refused (single use).
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{console_url(fleet)}/signin")
        replay = await page.evaluate(
            """async ([url, form]) => {
                form.pre_token = document.querySelector("input[name=pre_token]").value;
                const r = await fetch(url, {method: "POST", body: new URLSearchParams(form)});
                return [r.status, await r.text()]; }""",
            [f"{console_url(fleet)}/signin/wallet", {"nonce": nonce, "signature": signature}],
        )
        assert replay[0] == 401 and "used already" in replay[1], replay
        await page.context.close()

        # A challenge past its expiry: refused even with the right signature.
        page = await wallet_challenge(browser, fleet, "ops")
        message = await page.get_by_label("Message to sign").input_value()
        nonce = await page.locator("input[name=nonce]").input_value()
        await fleet.rows(
            "UPDATE console_challenges SET expires_at = now() - interval '1 second'"
            " WHERE nonce = $1 RETURNING nonce",
            nonce,
        )
        await page.get_by_label("Signature").fill(personal_sign(message, APPROVER_KEY))
        await page.get_by_role("button", name="Sign in", exact=True).click()
        assert "expired" in await page.get_by_role("alert").inner_text()
        assert not any(c["name"] == "wg_console" for c in await page.context.cookies())
        await page.context.close()
    finally:
        fleet.cli("approvals", "approver", "ops", "--clear")
