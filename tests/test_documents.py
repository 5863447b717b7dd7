"""Policy documents without a database: loading, validation, canonical form, compile, export."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.support.policy_documents import documents
from walletgate.cli import main
from walletgate.config.amounts import (
    MAX_BASE_UNITS,
    AmountError,
    from_base_units,
    normalize_decimal,
    to_base_units,
)
from walletgate.config.diff import diff_documents
from walletgate.config.documents import (
    DocumentInvalid,
    compile_document,
    export_document,
    normalize_document,
    parse_document,
    validate_document,
)
from walletgate.config.durations import DurationError, normalize_duration, parse_duration
from walletgate.config.schema_check import policy_schema
from walletgate.config.yaml_io import MAX_DOCUMENT_BYTES, YamlProblem, dump_yaml, load_yaml
from walletgate.policies.model import (
    ContractAllowlist,
    CumulativeCap,
    PerTxCap,
    Scope,
    Tier,
    TimeWindow,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "policies.yaml"
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+) \| (.+)$")


def errors_of(text: str, file: str = "doc.yaml") -> list[Any]:
    """Every error in ``text``, whether it fails to parse or to validate."""
    try:
        return validate_document(parse_document(text, file))
    except DocumentInvalid as exc:
        return list(exc.errors)


def minimal(**extra: Any) -> dict[str, Any]:
    """A small valid document; ``extra`` replaces top-level keys."""
    doc: dict[str, Any] = {
        "version": 1,
        "owners": [{"id": "acme"}],
        "agents": [{"id": "bot", "owner": "acme"}],
        "wallets": [
            {
                "id": "hot",
                "owner": "acme",
                "agent": "bot",
                "chain": 1337,
                "address": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
            }
        ],
        "assets": [
            {"id": "eth", "chain": 1337, "native": True, "symbol": "ETH", "decimals": 18},
            {
                "id": "wusd",
                "chain": 1337,
                "address": "0xf2e246bb76df876cef8b38ae84130f4f55de395b",
                "symbol": "WUSD",
                "decimals": 6,
            },
        ],
        "policies": [
            {
                "id": "limits",
                "agent": "bot",
                "rules": [{"id": "cap", "type": "per_tx_cap", "asset": "eth", "max": "1.5"}],
            }
        ],
    }
    doc.update(extra)
    return doc


def with_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return minimal(policies=[{"id": "limits", "agent": "bot", "rules": list(rules)}])


# ------------------------------------------------------------------ invalid examples


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_example_fails_at_the_line_and_path_its_header_names(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 10, "first line must say what is wrong"
    expected = EXPECT.match(lines[1])
    assert expected, f"{path.name}: second line must be '# expect: LINE:COL PATH | MESSAGE'"
    line, column, key_path, message = expected.groups()

    errors = errors_of(path.read_text(encoding="utf-8"), path.name)

    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    assert (error.line, error.column, error.path) == (int(line), int(column), key_path)
    assert message in error.message
    assert str(error) == f"{path.name}:{line}:{column}: {key_path}: {error.message}"


def test_there_is_an_invalid_example_for_every_kind_of_mistake_the_task_lists() -> None:
    names = {path.stem for path in INVALID}
    assert {
        "bad-yaml-syntax", "duplicate-key", "unknown-top-level-key", "float-amount",
        "unknown-agent-reference", "duplicate-id", "bad-address", "bad-checksum",
        "too-many-decimals", "zero-cap", "unknown-time-zone", "bad-duration",
        "unknown-rule-type", "missing-scope", "two-scopes", "unknown-asset-in-rule",
        "price-without-as-of",
    } <= names  # fmt: skip


# ------------------------------------------------------------------ the canonical example


def test_the_example_document_is_valid_and_compiles_to_exact_base_units() -> None:
    source = parse_document(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert validate_document(source) == []

    policies = compile_document(source, version=7)

    assert policies.version == 7
    trader = next(p for p in policies.policies if p.id == "trader-limits")
    assert trader.scope is Scope.AGENT and trader.target == "trader"
    eth_cap = trader.rules[0]
    assert isinstance(eth_cap, PerTxCap)
    assert eth_cap.limit.base_units == 1_500_000_000_000_000_000
    payroll = next(p for p in policies.policies if p.id == "payroll-limits")
    monthly = payroll.rules[1]
    assert isinstance(monthly, CumulativeCap)
    assert monthly.limit.base_units == 40_000 * 10**6
    assert (monthly.window.calendar, monthly.window.timezone) == ("month", "Europe/Berlin")
    assert policies.assets["eth"].price_usd == Decimal("3000")
    assert policies.assets["eth"].price_as_of == datetime(2026, 11, 1, tzinfo=UTC)
    hot = policies.wallet_by_address(1337, "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf")
    assert hot is not None and hot.id == "trader-hot"


def test_the_example_points_editors_at_the_schema_file() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    reference = first.removeprefix("# yaml-language-server: $schema=")
    assert reference != first
    schema_file = (EXAMPLE.parent / reference).resolve()
    assert json.loads(schema_file.read_text(encoding="utf-8")) == policy_schema()


def test_the_schema_is_valid_draft_2020_12_and_closed_everywhere() -> None:
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    objects = [d for d in schema["$defs"].values() if d.get("type") == "object"]
    open_ones = [d for d in objects if d.get("additionalProperties") is not False]
    # Only the rule dispatcher is open: each rule type's own schema is closed.
    assert open_ones == [schema["$defs"]["rule"]]
    assert "oneOf" not in json.dumps(schema)


# ------------------------------------------------------------------ the YAML loader


def test_duplicate_keys_are_all_reported_with_both_lines() -> None:
    with pytest.raises(YamlProblem) as raised:
        load_yaml("a: 1\nb: 2\na: 3\nb: 4\n")
    problems = raised.value.problems
    assert [(mark.line if mark else 0, p.path, p.message) for mark, p in problems] == [
        (3, ("a",), "duplicate key 'a' (first at line 1)"),
        (4, ("b",), "duplicate key 'b' (first at line 2)"),
    ]


def test_aliases_are_refused_so_a_billion_laughs_cannot_expand() -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(9)
    )
    errors = errors_of(bomb)
    assert len(errors) == 1
    assert (errors[0].line, errors[0].path) == (2, "b[0]")
    assert "aliases" in errors[0].message


def test_documents_over_the_size_limit_are_refused_before_parsing() -> None:
    text = "version: 1\n# " + "x" * MAX_DOCUMENT_BYTES + "\n"
    errors = errors_of(text)
    assert [e.message for e in errors] == [f"document is larger than {MAX_DOCUMENT_BYTES} bytes"]


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    errors = errors_of("a: " + "[" * 5000 + "]" * 5000)
    assert len(errors) == 1 and "nesting deeper" in errors[0].message


def test_only_plain_data_tags_are_accepted() -> None:
    errors = errors_of("version: !!python/object/apply:os.system ['true']\n")
    assert len(errors) == 1 and "unsupported YAML tag" in errors[0].message


def test_scalars_follow_the_yaml_1_2_core_schema() -> None:
    data = load_yaml("a: yes\nb: on\nc: 17:30\nd: 0x12\ne: 017\nf: true\ng: ~\nh: 1e3\n").data
    assert data == {"a": "yes", "b": "on", "c": "17:30", "d": "0x12", "e": 17, "f": True,
                    "g": None, "h": 1000.0}  # fmt: skip


def test_integers_too_long_for_python_are_an_error_not_a_crash() -> None:
    errors = errors_of("version: " + "9" * 5000 + "\n")
    assert len(errors) == 1 and "integer too large" in errors[0].message


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
))  # fmt: skip
def test_dumped_yaml_reads_back_identically(data: Any) -> None:
    assert load_yaml(dump_yaml(data)).data == data


# ------------------------------------------------------------------ validation


def test_every_schema_error_is_reported_not_only_the_first() -> None:
    doc = minimal()
    doc["owners"][0]["nickname"] = "x"
    doc["wallets"][0]["chain"] = "1337"
    doc["policies"][0]["rules"][0]["max"] = 1.5
    paths = [error.path for error in validate_document(doc)]
    assert paths == ["owners[0].nickname", "policies[0].rules[0].max", "wallets[0].chain"]


def test_a_float_amount_error_tells_the_user_to_quote_it() -> None:
    errors = errors_of(
        "version: 1\nassets:\n  - {id: x, chain: 1, native: true, symbol: X,"
        " decimals: 2, price_usd: 0.10, price_as_of: '2026-01-01T00:00:00Z'}\n"
    )
    assert [e.message for e in errors] == [
        '0.10 is a YAML float, and floats lose precision: write amounts as quoted strings, '
        'e.g. "0.10"'
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf", True),  # lowercase: no checksum
        ("0x7E5F4552091A69125D5DFCB7B8C2659029395BDF", True),  # uppercase: no checksum
        ("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", True),  # EIP-55
        ("0x7E5F4552091A69125d5DfCb7b8C2659029395BDf", False),  # one letter's case wrong
        ("0x7e5f4552091a69125d5dfcb7b8c2659029395bdg", False),  # not hex
    ],
)
def test_addresses_in_any_case_but_mixed_case_must_be_checksummed(
    address: str, valid: bool
) -> None:
    doc = with_rules({"id": "to", "type": "destination_allowlist", "addresses": [address]})
    errors = validate_document(doc)
    assert (errors == []) is valid, errors
    if valid:
        rule = normalize_document(doc)["policies"][0]["rules"][0]
        assert rule["addresses"] == [address.lower()]


def test_the_same_address_in_two_spellings_is_listed_twice() -> None:
    doc = with_rules({"id": "to", "type": "destination_denylist", "addresses": [
        "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
    ]})  # fmt: skip
    [error] = validate_document(doc)
    assert error.path == "policies[0].rules[0].addresses[1]"
    assert "listed twice" in error.message


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"id": "c", "type": "per_tx_cap", "usd": "0"}, "usd", "greater than 0"),
        ({"id": "c", "type": "approval_limit", "asset": "wusd", "max": "0"}, "max",
         "greater than 0"),
        ({"id": "c", "type": "per_tx_cap", "asset": "eth", "max": "1e3"}, "max", "plain decimal"),
        ({"id": "c", "type": "per_tx_cap", "asset": "eth"}, "asset", "'max' is required"),
        ({"id": "c", "type": "per_tx_cap"}, "", "either asset and max, or usd"),
        ({"id": "c", "type": "cumulative_cap", "usd": "5", "scope": "wallet"}, "",
         "rolling window"),
        ({"id": "c", "type": "cumulative_cap", "usd": "5", "scope": "wallet", "window": "1d",
          "calendar": "day"}, "", "not both"),
        ({"id": "c", "type": "cumulative_cap", "usd": "5", "scope": "wallet", "window": "1d",
          "timezone": "UTC"}, "timezone", "'calendar' is required"),
        ({"id": "c", "type": "rate_limit", "counts": "requests", "max": 0, "per": "1m",
          "scope": "agent"}, "max", "less than the minimum"),
        ({"id": "c", "type": "rate_limit", "counts": "requests", "max": 5, "per": "999999999d",
          "scope": "agent"}, "per", "longer than 100 years"),
        ({"id": "c", "type": "tier", "usd_above": "5", "action": "notify", "delay": "1m"}, "",
         "only used with action: delay"),
        ({"id": "c", "type": "contract_allowlist", "contracts": [
            {"address": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
             "methods": ["*", "0xa9059cbb"]}]}, "contracts[0].methods", "list it alone"),
        ({"id": "c", "type": "signing_allowlist", "methods": ["eth_sendTransaction"]},
         "methods[0]", "is not one of"),
        ({"id": "c", "type": "asset_allowlist", "assets": ["eth", "dai"]}, "assets[1]",
         "unknown asset 'dai'"),
    ],
)  # fmt: skip
def test_rule_mistakes_are_reported_at_the_key_that_is_wrong(
    rule: dict[str, Any], path: str, message: str
) -> None:
    errors = validate_document(with_rules(rule))
    expected_path = "policies[0].rules[0]" + (f".{path}" if path and path[0] != "[" else path)
    assert [(e.path, message in e.message) for e in errors] == [(expected_path, True)], errors


def test_a_policy_attached_to_a_missing_wallet_is_an_error() -> None:
    doc = minimal(policies=[{"id": "p", "wallet": "cold", "rules": [
        {"id": "c", "type": "chain_allowlist", "chains": [1]}]}])  # fmt: skip
    [error] = validate_document(doc)
    assert (error.path, error.message) == (
        "policies[0].wallet",
        "unknown wallet 'cold' (known: hot)",
    )


def test_two_native_assets_on_one_chain_are_an_error() -> None:
    doc = minimal()
    doc["assets"].append(
        {"id": "eth2", "chain": 1337, "native": True, "symbol": "E", "decimals": 18}
    )
    [error] = validate_document(doc)
    assert error.path == "assets[2].native" and "native coin" in error.message


def test_errors_without_a_file_have_no_line() -> None:
    [error] = validate_document(minimal(version=2))
    assert (error.file, error.line, str(error)) == (
        "<document>",
        0,
        "<document>: version: this walletgate reads documents with version: 1",
    )


def test_an_empty_document_says_how_to_start() -> None:
    assert [e.message for e in errors_of("")] == ["the document is empty: start with 'version: 1'"]


# ------------------------------------------------------------------ amounts and durations


@given(st.integers(0, MAX_BASE_UNITS), st.integers(0, 77))
def test_base_units_round_trip_exactly_through_whole_units(base_units: int, decimals: int) -> None:
    text = from_base_units(base_units, decimals)
    assert to_base_units(text, decimals) == base_units
    assert normalize_decimal(text) == text


def test_amount_conversion_is_exact_and_refuses_what_it_cannot_represent() -> None:
    assert to_base_units("0.000000000000000001", 18) == 1
    assert to_base_units("1.50", 1) == 15  # trailing zeros are not extra precision
    assert to_base_units(7, 0) == 7
    with pytest.raises(AmountError, match="has 2 decimal places but the asset has only 1"):
        to_base_units("0.15", 1)
    with pytest.raises(AmountError, match="more than a uint256"):
        to_base_units(str(MAX_BASE_UNITS + 1), 0)
    with pytest.raises(AmountError, match="plain decimal"):
        to_base_units("-1", 0)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [("30s", 30, "30s"), ("90s", 90, "90s"), ("15m", 900, "15m"), ("24h", 86400, "1d"),
     ("7d", 604800, "7d"), ("60m", 3600, "1h")],
)  # fmt: skip
def test_durations(text: str, seconds: int, canonical: str) -> None:
    assert parse_duration(text) == seconds
    assert normalize_duration(text) == canonical


@pytest.mark.parametrize("text", ["0s", "1w", "1.5h", "h", " 1h", "1H", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration(text)


# ------------------------------------------------------------------ compile


def test_rules_compile_to_the_evaluator_model() -> None:
    doc = with_rules(
        {"id": "contracts", "type": "contract_allowlist", "contracts": [
            {"address": "0xF2E246BB76DF876CEF8B38AE84130F4F55DE395B",
             "methods": ["transfer(address, uint256)", "0x095EA7B3"]},
            {"address": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf"},
        ]},
        {"id": "hours", "type": "time_window", "timezone": "Europe/Berlin",
         "days": ["fri", "mon"], "from": "22:00", "to": "06:00"},
        {"id": "hold", "type": "tier", "asset": "wusd", "above": "0.5", "action": "delay",
         "delay": "15m", "approval_timeout": "2h"},
        {"id": "monthly", "type": "cumulative_cap", "usd": "100.50", "calendar": "month",
         "scope": "owner"},
    )  # fmt: skip
    contracts, hours, hold, monthly = compile_document(doc, 1).policies[0].rules

    assert isinstance(contracts, ContractAllowlist)
    assert contracts.methods == {
        ("0xf2e246bb76df876cef8b38ae84130f4f55de395b", "0xa9059cbb"),
        ("0xf2e246bb76df876cef8b38ae84130f4f55de395b", "0x095ea7b3"),
        ("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf", None),
    }
    assert contracts.allow_create is False
    assert isinstance(hours, TimeWindow)
    assert (hours.days, hours.start, hours.end) == (frozenset({0, 4}), time(22, 0), time(6, 0))
    assert isinstance(hold, Tier)
    assert (hold.above.asset, hold.above.base_units, hold.delay_seconds) == ("wusd", 500_000, 900)
    assert hold.approval_timeout_seconds == 7200
    assert isinstance(monthly, CumulativeCap)
    assert monthly.limit.usd == Decimal("100.5")
    assert (monthly.window.calendar, monthly.window.timezone, monthly.scope) == (
        "month", "UTC", Scope.OWNER
    )  # fmt: skip


def test_compile_sets_policy_versions_and_refuses_invalid_documents() -> None:
    compiled = compile_document(minimal(), 3, policy_versions={"limits": 4})
    assert compiled.policies[0].version == 4
    with pytest.raises(DocumentInvalid) as raised:
        compile_document(minimal(version=2), 3)
    assert raised.value.errors[0].path == "version"


def test_prices_keep_their_zone_and_age() -> None:
    doc = minimal()
    doc["assets"][0] |= {"price_usd": "3000.10", "price_as_of": "2026-11-01T09:30:00+02:00",
                         "price_max_age": "36h"}  # fmt: skip
    asset = compile_document(doc, 1).assets["eth"]
    assert asset.price_usd == Decimal("3000.1")
    assert asset.price_as_of == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    assert asset.price_max_age == timedelta(hours=36)
    canonical = normalize_document(doc)["assets"][0]
    assert (canonical["price_as_of"], canonical["price_max_age"]) == ("2026-11-01T07:30:00Z", "36h")


def test_a_price_time_without_a_zone_is_refused() -> None:
    doc = minimal()
    doc["assets"][0] |= {"price_usd": "1", "price_as_of": "2026-11-01T09:30:00"}
    [error] = validate_document(doc)
    assert error.path == "assets[0].price_as_of" and "no time zone" in error.message


# ------------------------------------------------------------------ canonical form and export


@settings(max_examples=60, deadline=None)
@given(documents())
def test_generated_documents_are_valid_and_survive_export(doc: dict[str, Any]) -> None:
    assert validate_document(doc) == []
    canonical = normalize_document(doc)
    assert normalize_document(canonical) == canonical

    exported = export_document(canonical, "policies.schema.json")
    reread = normalize_document(parse_document(exported, "export.yaml"))

    assert reread == canonical
    assert diff_documents(canonical, reread).empty
    assert compile_document(reread, 1) == compile_document(doc, 1)


def test_export_carries_the_schema_comment_and_version() -> None:
    text = export_document(normalize_document(minimal()), "../schemas/policies.schema.json")
    assert text.startswith("# yaml-language-server: $schema=../schemas/policies.schema.json\n")
    assert "\nversion: 1\n" in text
    assert 'max: "1.5"' in text  # amounts stay quoted decimal strings


# ------------------------------------------------------------------ plans (pure diff)


def test_a_plan_lists_added_changed_and_removed_entities_with_field_diffs() -> None:
    before = normalize_document(minimal())
    after_doc = minimal()
    after_doc["owners"].append({"id": "globex"})
    after_doc["agents"] = []
    after_doc["wallets"][0].pop("agent")
    after_doc["policies"] = [
        {"id": "limits", "wallet": "hot", "rules": [
            {"id": "cap", "type": "per_tx_cap", "asset": "eth", "max": "2"},
            {"id": "chains", "type": "chain_allowlist", "chains": [1337]},
        ]}
    ]  # fmt: skip

    plan = diff_documents(before, normalize_document(after_doc))

    assert plan.kind("owners").added == ("globex",)
    assert plan.kind("agents").removed == ("bot",)
    [wallet] = plan.kind("wallets").changed
    assert [(f.path, f.before, f.after) for f in wallet.fields] == [("agent", "bot", None)]
    [policy] = plan.kind("policies").changed
    assert [(f.path, f.before, f.after) for f in policy.fields] == [
        ("agent", "bot", None),
        ("rules[cap].max", "1.5", "2"),
        ("rules[chains]", None, {"id": "chains", "type": "chain_allowlist", "chains": [1337]}),
        ("wallet", None, "hot"),
    ]
    assert plan.counts() == (1, 2, 1)
    rendered = plan.render()
    assert "owners:\n  + globex" in rendered
    assert "  - bot" in rendered
    assert '      rules[cap].max: "1.5" -> "2"' in rendered
    assert rendered.endswith("Plan: 1 to add, 2 to change, 1 to remove.")


def test_reordering_rules_is_a_change_but_respelling_them_is_not() -> None:
    rules: list[dict[str, Any]] = [
        {"id": "a", "type": "per_tx_cap", "usd": "5.0"},
        {"id": "b", "type": "rate_limit", "counts": "requests", "max": 5, "per": "60s",
         "scope": "agent"},
    ]  # fmt: skip
    before = normalize_document(with_rules(*rules))
    respelt = [{**rules[0], "usd": "5"}, {**rules[1], "per": "1m"}]
    assert diff_documents(before, normalize_document(with_rules(*respelt))).empty
    [change] = (
        diff_documents(before, normalize_document(with_rules(*reversed(rules))))
        .kind("policies")
        .changed
    )
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("rules order", ["a", "b"], ["b", "a"])
    ]


# ------------------------------------------------------------------ the validate command


def test_validate_command_prints_a_census_for_a_valid_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policies", "validate", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == (
        "OK: 1 owner, 2 agents, 3 wallets, 3 assets, 3 policies (19 rules)\n"
    )


def test_validate_command_prints_every_error_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nowners:\n  - id: Acme\n  - id: x\n    name: 1.5\n", encoding="utf-8"
    )
    assert main(["policies", "validate", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f'{bad}:3:5: owners[0].id: "Acme" must be 1-63 characters')
    assert err[1].startswith(f"{bad}:5:5: owners[1].name: 1.5 is a YAML float")
    assert err[2] == "2 errors"


def test_validate_command_reports_unreadable_files_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policies", "validate", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err == (
        f"walletgate: cannot read {tmp_path / 'missing.yaml'}: No such file or directory\n"
    )
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe")
    assert main(["policies", "validate", str(binary)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err
