"""The signing allowlist judges typed data by what it signs: its domain, primary type,
types and fields (``typed_data`` entries), never by the method name alone. Policies are
written as YAML documents and compiled; requests are decoded from real params."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.evm_builders import mail, permit
from tests.support.typed_shapes import (
    DELEGATION_MANAGER,
    ERC721,
    delegation,
    item,
    nft_permit,
    seaport_order,
)
from walletgate.config.documents import (
    compile_document,
    document_warnings_of,
    parse_document,
    validate_document,
)
from walletgate.config.yaml_io import dump_yaml
from walletgate.policies.decision import Decision, Outcome, Reason
from walletgate.policies.evaluator import evaluate
from walletgate.policies.request import SpendRequest
from walletgate.proxy.evm.decode import decode_call

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CHAIN = 1337
WALLET = "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"
MAIL_CONTRACT = "0x" + "cc" * 20
FRIEND = "0x" + "12" * 20  # the sender mail() puts in the message
STRANGER = "0x" + "34" * 20
TOKEN = "0x" + "70" * 20
COLLECTION = "0x" + "c1" * 20
SPENDER = "0x" + "5e" * 20
TYPED_V4 = "eth_signTypedData_v4"
MAIL_TYPES = "Mail(address from,string contents)"


def document(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "owners": [{"id": "acme"}],
        "agents": [{"id": "bot", "owner": "acme"}],
        "wallets": [
            {"id": "hot", "owner": "acme", "agent": "bot", "chain": CHAIN, "address": WALLET}
        ],
        "assets": [
            {"id": "eth", "chain": CHAIN, "native": True, "symbol": "ETH", "decimals": 18},
            {"id": "tok", "chain": CHAIN, "address": TOKEN, "symbol": "TOK", "decimals": 6},
        ],
        "policies": [{"id": "p", "agent": "bot", "rules": list(rules)}],
    }


def signing(**keys: Any) -> dict[str, Any]:
    return {"id": "sign", "type": "signing_allowlist", "methods": [TYPED_V4], **keys}


def entry(**keys: Any) -> dict[str, Any]:
    return {
        "verifying_contract": MAIL_CONTRACT,
        "chain_id": CHAIN,
        "primary_type": "Mail",
        **keys,
    }


def decide(rules: list[dict[str, Any]], typed: Any, method: str = TYPED_V4) -> Decision:
    policies = compile_document(document(*rules), version=1)
    if method in ("eth_sign", "personal_sign"):
        params: list[Any] = [WALLET, "0x" + "ab" * 32] if method == "eth_sign" else ["0x01", WALLET]
    else:
        params = [WALLET, typed]
    decoded = decode_call(method, params, chain_id=CHAIN)
    return evaluate(SpendRequest("bot", decoded, CHAIN), policies, NOW)


def allowed(decision: Decision) -> bool:
    return decision.outcome is Outcome.ALLOW


def test_a_typed_data_method_alone_admits_no_document() -> None:
    decision = decide([signing()], mail())
    assert decision.reason is Reason.SIGNING_NOT_ALLOWED
    assert "no typed_data entry" in decision.message


def test_an_entry_admits_its_domain_and_primary_type() -> None:
    assert allowed(decide([signing(typed_data=[entry()])], mail()))
    assert allowed(decide([signing(typed_data=[entry(name="Ether Mail")])], mail()))


@pytest.mark.parametrize(
    "changed",
    [
        {"verifying_contract": "0x" + "cd" * 20},
        {"chain_id": 1},
        {"name": "Other Mail"},
        {"primary_type": "Letter"},
        {"types": "Mail(address from,string body)"},
    ],
)
def test_an_entry_for_another_domain_or_type_does_not_admit(changed: dict[str, Any]) -> None:
    decision = decide([signing(typed_data=[entry(**changed)])], mail())
    assert decision.reason is Reason.SIGNING_NOT_ALLOWED, decision.message


def test_the_method_must_still_be_listed() -> None:
    rule = signing(typed_data=[entry()], methods=["personal_sign"])
    assert decide([rule], mail()).reason is Reason.SIGNING_NOT_ALLOWED
    assert allowed(decide([rule], None, method="personal_sign"))


def test_field_conditions_judge_the_message() -> None:
    friend_only = entry(types=MAIL_TYPES, conditions={"from": {"equals": FRIEND}})
    assert allowed(decide([signing(typed_data=[friend_only])], mail()))
    stranger = copy.deepcopy(mail())
    stranger["message"]["from"] = STRANGER
    decision = decide([signing(typed_data=[friend_only])], stranger)
    assert decision.reason is Reason.SIGNING_NOT_ALLOWED
    assert "message.from" in decision.message
    listed = signing(
        typed_data=[entry(types=MAIL_TYPES, conditions={"from": {"in_list": "friends"}})],
        lists={"friends": [FRIEND]},
    )
    assert allowed(decide([listed], mail()))
    assert not allowed(decide([listed], stranger))


def test_a_document_without_a_chain_id_needs_allow_missing_chain_id() -> None:
    unbound = copy.deepcopy(mail())
    unbound["domain"].pop("chainId")
    unbound["types"]["EIP712Domain"] = [
        f for f in unbound["types"]["EIP712Domain"] if f["name"] != "chainId"
    ]
    assert not allowed(decide([signing(typed_data=[entry()])], unbound))
    assert allowed(decide([signing(typed_data=[entry(allow_missing_chain_id=True)])], unbound))


def test_the_unsafe_opt_out_admits_undecoded_documents_only() -> None:
    unsafe = signing(allow_any_typed_data_unsafe=True)
    assert allowed(decide([unsafe], mail()))
    # A delegation hands over the account: only an entry admits it.
    handover = delegation(SPENDER, WALLET)
    decision = decide([unsafe], handover)
    assert decision.reason is Reason.SIGNING_NOT_ALLOWED
    assert "erc7710-delegation" in decision.message
    delegation_entry = entry(
        verifying_contract=DELEGATION_MANAGER, primary_type="Delegation", name="DelegationManager"
    )
    assert allowed(decide([signing(typed_data=[delegation_entry])], handover))
    # An entry whose conditions fail is not overridden by the opt-out.
    strict = entry(types=MAIL_TYPES, conditions={"from": {"equals": STRANGER}})
    assert not allowed(
        decide([signing(typed_data=[strict], allow_any_typed_data_unsafe=True)], mail())
    )


def test_a_permit_without_a_chain_id_is_refused_unless_allowed() -> None:
    cap = {"id": "cap", "type": "per_tx_cap", "asset": "tok", "max": "10"}
    unbound = permit(WALLET, 5, token=TOKEN, chain_id=None, spender=SPENDER)
    bound = permit(WALLET, 5, token=TOKEN, spender=SPENDER)
    # A permit is an approval: caps judge it, and it needs no entry when it binds a chain.
    assert allowed(decide([cap], bound))
    decision = decide([cap, signing()], unbound)
    assert decision.reason is Reason.SIGNING_NOT_ALLOWED
    assert "no chainId" in decision.message
    permit_entry = entry(verifying_contract=TOKEN, primary_type="Permit", name="Token")
    assert not allowed(decide([cap, signing(typed_data=[permit_entry])], unbound))
    replayable = signing(typed_data=[{**permit_entry, "allow_missing_chain_id": True}])
    assert allowed(decide([cap, replayable], unbound))
    # ... and the opt-out does not reach it.
    assert not allowed(decide([cap, signing(allow_any_typed_data_unsafe=True)], unbound))


def test_decoded_shapes_are_judged_as_what_they_move() -> None:
    # An NFT permit and a Seaport order are approvals and transfers: an entry for their
    # domain does not admit them, their intents are judged (here: an unknown collection).
    permit_entry = entry(verifying_contract=COLLECTION, primary_type="Permit")
    for typed in (
        nft_permit(COLLECTION, SPENDER, 1),
        seaport_order(WALLET, [item(ERC721, COLLECTION, 1, 1)]),
    ):
        assert not allowed(decide([signing(typed_data=[permit_entry])], typed))


def test_legacy_typed_data_needs_the_opt_out() -> None:
    legacy = [{"type": "string", "name": "hello", "value": "world"}]
    rule = signing(methods=["eth_signTypedData"])
    policies_doc = [rule]
    decoded = decode_call("eth_signTypedData", [legacy, WALLET], chain_id=CHAIN)
    policies = compile_document(document(*policies_doc), version=1)
    refused = evaluate(SpendRequest("bot", decoded, CHAIN), policies, NOW)
    assert refused.reason is Reason.SIGNING_NOT_ALLOWED
    unsafe = compile_document(document({**rule, "allow_any_typed_data_unsafe": True}), version=1)
    assert evaluate(SpendRequest("bot", decoded, CHAIN), unsafe, NOW).outcome is Outcome.ALLOW


# -- the document: validation, warnings, canonical form ---------------------------------


def test_validate_warns_about_the_opt_out_and_eth_sign() -> None:
    doc = document(signing(allow_any_typed_data_unsafe=True, methods=[TYPED_V4, "eth_sign"]))
    text = dump_yaml(doc)
    source = parse_document(text, "p.yaml")
    assert validate_document(source) == []
    warnings = document_warnings_of(source)
    assert {w.path for w in warnings} == {
        "policies[0].rules[0].allow_any_typed_data_unsafe",
        "policies[0].rules[0].methods[1]",
    }
    assert all(w.line > 0 for w in warnings)
    assert document_warnings_of(document(signing(typed_data=[entry()]))) == []


@pytest.mark.parametrize(
    ("typed_entry", "path", "fragment"),
    [
        (entry(conditions={"from": {"equals": FRIEND}}), "typed_data[0]", "types"),
        (entry(types="Letter(address from)"), "typed_data[0].types", "primary type"),
        (
            entry(types="Mail(Person from)Person(string name)", primary_type="Mail"),
            "",
            "",
        ),
        (entry(types="Mail(Person from)"), "typed_data[0].types", "not defined"),
        (
            entry(types=MAIL_TYPES, conditions={"from": {"lte": "5"}}),
            "typed_data[0].conditions.from",
            "",
        ),
        (
            entry(types=MAIL_TYPES, conditions={"from": {"in_list": "nobody"}}),
            "typed_data[0].conditions.from",
            "unknown address list",
        ),
    ],
)
def test_entry_mistakes_are_reported_where_they_are(
    typed_entry: dict[str, Any], path: str, fragment: str
) -> None:
    errors = validate_document(document(signing(typed_data=[typed_entry])))
    if not path:  # a valid entry
        assert errors == []
        return
    assert errors, typed_entry
    assert errors[0].path.startswith(f"policies[0].rules[0].{path}"), errors
    assert fragment in errors[0].message


def test_anyone_cannot_be_listed() -> None:
    rule = {"id": "to", "type": "destination_allowlist", "addresses": ["0x" + "ff" * 20]}
    [error] = validate_document(document(rule))
    assert "stands for anyone" in error.message


def test_typed_data_entries_round_trip_through_the_canonical_form() -> None:
    from walletgate.config.documents import export_document, normalize_document

    rule = signing(
        typed_data=[
            entry(
                verifying_contract=MAIL_CONTRACT.upper().replace("0X", "0x"),
                types=MAIL_TYPES,
                conditions={"from": {"equals": FRIEND.upper().replace("0X", "0x")}},
            )
        ]
    )
    canonical = normalize_document(document(rule))
    again = normalize_document(parse_document(export_document(canonical)))
    assert again == canonical
    [typed] = canonical["policies"][0]["rules"][0]["typed_data"]
    assert typed["verifying_contract"] == MAIL_CONTRACT
    assert typed["allow_missing_chain_id"] is False


def test_the_validate_command_prints_the_warnings(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from walletgate.cli import main

    path = tmp_path / "p.yaml"
    path.write_text(dump_yaml(document(signing(allow_any_typed_data_unsafe=True))))
    assert main(["policies", "validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.endswith("(1 warning)\n")
    assert f"warning: {path}:" in err
    assert "allow_any_typed_data_unsafe" in err


def test_conditions_reach_into_arrays_of_structs() -> None:
    types = "Order(address maker,Item[] items)Item(address token,uint256 id)"
    order_entry = entry(
        primary_type="Order",
        types=types,
        conditions={
            "maker": {"own_wallet": True},
            "items": {"every": {"fields": {"token": {"equals": TOKEN}, "id": {"lte": "9"}}}},
        },
    )
    rule = signing(typed_data=[order_entry])

    def order(maker: str, *items: tuple[str, int]) -> dict[str, Any]:
        document = copy.deepcopy(mail())
        document["types"] = {
            "EIP712Domain": document["types"]["EIP712Domain"],
            "Order": [{"name": "maker", "type": "address"}, {"name": "items", "type": "Item[]"}],
            "Item": [{"name": "token", "type": "address"}, {"name": "id", "type": "uint256"}],
        }
        document["primaryType"] = "Order"
        document["message"] = {
            "maker": maker,
            "items": [{"token": token, "id": token_id} for token, token_id in items],
        }
        return document

    assert allowed(decide([rule], order(WALLET, (TOKEN, 1), (TOKEN, 9))))
    over = decide([rule], order(WALLET, (TOKEN, 1), (TOKEN, 10)))
    assert not allowed(over) and "message.items[1].id" in over.message
    assert not allowed(decide([rule], order(STRANGER, (TOKEN, 1))))
    # The same fields under other types are another typehash: the entry does not match.
    retyped = order(WALLET, (TOKEN, 1))
    retyped["types"]["Item"][1]["type"] = "uint128"
    assert "no typed_data entry" in decide([rule], retyped).message
