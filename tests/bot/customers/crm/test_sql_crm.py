"""The built-in SQL CRM, the adapter registry and the ``crm`` configuration section."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from bot.config import DEFAULTS, ConfigError, load_config
from bot.service import check_crm_adapter
from bot.customers.crm.base import CrmCustomer, CrmError, CrmUnavailable, normalize_house_number, normalize_postcode, profile_within
from bot.customers.crm.registry import crm_class, load_crm
from bot.customers.crm.sql import SqlCrm
from bot.store.database import Store
from bot.store.models import Base, Case, ChannelIdentity, Conversation, CrmContract, CrmCustomerRecord, Customer


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store.from_url(f"sqlite:///{tmp_path}/crm.db")
    else:
        store = Store.from_url(request.getfixturevalue("pg_url"))
        with store.engine.begin() as connection:  # each test starts empty
            connection.exec_driver_sql(
                f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY CASCADE")
    yield store
    store.close()


def fill(store: Store) -> None:
    def add(session) -> None:  # type: ignore[no-untyped-def]
        session.add_all([
            CrmCustomerRecord(customer_number="C-100", name="Ann de Vries", email="ann@example.org",
                              phone="0612345678", postcode="1234AB", house_number="12A", segment="vip"),
            CrmCustomerRecord(customer_number="C-200", name="Bob Jansen", postcode="1234AB", house_number="14"),
        ])
        session.flush()
        session.add_all([
            CrmContract(contract_id="K-1", customer_number="C-100", product="Internet 100",
                        status="ended", start_date=dt.date(2020, 1, 1), end_date=dt.date(2022, 12, 31),
                        monthly_amount_cents=3950),
            CrmContract(contract_id="K-2", customer_number="C-100", product="Internet 1000",
                        status="active", start_date=dt.date(2023, 1, 1), monthly_amount_cents=5005),
            CrmContract(contract_id="K-3", customer_number="C-100", product="Router rental", status="pending"),
        ])
    store.transaction(add)


def test_normalisation() -> None:
    assert normalize_postcode(" 1234 ab ") == "1234AB"
    assert normalize_postcode("9999ZZ") == "9999ZZ"
    for bad in ("0123AB", "12345", "1234 A", "ABCD12", ""):
        with pytest.raises(ValueError):
            normalize_postcode(bad)
    assert normalize_house_number("12") == "12"
    assert normalize_house_number("12 a") == "12A"
    assert normalize_house_number("12-bis") == "12BIS"
    for bad in ("", "a12", "0", "twelve"):
        with pytest.raises(ValueError):
            normalize_house_number(bad)


async def test_find_customer_by_number_and_by_address(store: Store) -> None:
    fill(store)
    crm = SqlCrm(store)
    await crm.start()
    ann = await crm.find_customer(customer_number=" C-100 ")
    assert ann == CrmCustomer(customer_number="C-100", name="Ann de Vries", email="ann@example.org",
                              phone="0612345678", postcode="1234AB", house_number="12A", segment="vip")
    by_address = await crm.find_customer(postcode="1234 ab", house_number="12 a")
    assert by_address is not None and by_address.customer_number == "C-100"
    bob = await crm.find_customer(postcode="1234AB", house_number="14")
    assert bob is not None and bob.name == "Bob Jansen"
    assert await crm.find_customer(customer_number="C-999") is None
    assert await crm.find_customer(postcode="1234AB", house_number="99") is None
    assert await crm.find_customer(postcode="not a postcode", house_number="12") is None
    with pytest.raises(ValueError):
        await crm.find_customer(postcode="1234AB")
    await crm.stop()


async def test_profile_has_contracts_newest_first_and_linked_cases(store: Store) -> None:
    fill(store)

    def linked_case(session) -> None:  # type: ignore[no-untyped-def]
        customer = Customer(display_name="Ann", flags=[], crm_ref="C-100")
        session.add(customer)
        session.flush()
        identity = ChannelIdentity(customer_id=customer.id, channel="telegram", external_id="42")
        session.add(identity)
        session.flush()
        conversation = Conversation(customer_id=customer.id, identity_id=identity.id, channel="telegram",
                                    rasa_sender_id="telegram:42")
        session.add(conversation)
        session.flush()
        session.add(Case(conversation_id=conversation.id, customer_id=customer.id, trigger="complaint",
                         root_cause="outage"))

    store.transaction(linked_case)
    crm = SqlCrm(store)
    profile = await crm.profile("C-100")
    assert profile is not None
    data = profile.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-serialisable as is
    assert data["customer"]["customer_number"] == "C-100" and data["customer"]["flags"] == []
    assert [c["contract_id"] for c in data["contracts"]] == ["K-2", "K-1", "K-3"]  # undated last
    assert data["contracts"][0] == {"contract_id": "K-2", "product": "Internet 1000", "status": "active",
                                    "start_date": "2023-01-01", "end_date": None, "monthly_amount": "50.05"}
    assert data["contracts"][1]["monthly_amount"] == "39.50"
    assert data["contracts"][1]["end_date"] == "2022-12-31"
    [case] = data["recent"]
    assert (case["kind"], case["trigger"], case["status"], case["root_cause"]) == ("case", "complaint", "open", "outage")

    bob = await crm.profile("C-200")
    assert bob is not None and bob.contracts == [] and bob.recent == []
    assert await crm.profile("C-999") is None


async def test_profile_within_statuses(store: Store) -> None:
    fill(store)
    crm = load_crm(DEFAULTS["crm"], store)
    assert isinstance(crm, SqlCrm)
    status, data = await profile_within(crm, "C-100", 2.0)
    assert status == "ok" and data is not None and data["customer"]["name"] == "Ann de Vries"
    assert await profile_within(crm, "C-999", 2.0) == ("not_found", None)
    assert await profile_within(crm, None, 2.0) == ("not_found", None)


async def test_store_down_is_unavailable(tmp_path: Path) -> None:
    store = Store.from_url(f"sqlite:///{tmp_path}/gone.db")
    store.close()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # the database path is now a folder: sqlite cannot open it
    broken = Store(store.engine)
    try:
        with pytest.raises(CrmUnavailable, match="store unavailable"):
            await SqlCrm(broken).profile("C-100")
        assert await profile_within(SqlCrm(broken), "C-100", 2.0) == ("unavailable", None)
    finally:
        broken.close()


def test_registry_resolves_names_and_dotted_paths() -> None:
    from bot.customers.crm.http import HttpCrm

    assert crm_class("sql") is SqlCrm
    assert crm_class("http") is HttpCrm
    assert crm_class("bot.customers.crm.sql:SqlCrm") is SqlCrm
    assert crm_class("bot.customers.crm.sql.SqlCrm") is SqlCrm
    with pytest.raises(CrmError, match="unknown CRM adapter 'salesforce'"):
        crm_class("salesforce")
    with pytest.raises(CrmError, match="no module 'nowhere.crm'"):
        crm_class("nowhere.crm:Adapter")
    with pytest.raises(CrmError, match="has no class 'Missing'"):
        crm_class("bot.customers.crm.sql:Missing")
    with pytest.raises(CrmError, match="not a webcare CrmAdapter subclass"):
        crm_class("bot.store.models:Customer")


def test_load_crm_builds_the_http_adapter_with_its_token_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WEBCARE_CRM_TOKEN", "s3cret")
    section = {**DEFAULTS["crm"], "adapter": "http",
               "http": {**DEFAULTS["crm"]["http"], "base_url": "http://127.0.0.1:9/api/"}}
    crm = load_crm(section, store=None)  # type: ignore[arg-type]
    assert crm.name == "http" and crm.base_url == "http://127.0.0.1:9/api"  # type: ignore[attr-defined]
    assert crm.breaker.failure_threshold == 5 and crm.breaker.reset_seconds == 30  # type: ignore[attr-defined]
    assert "s3cret" not in repr(crm)


def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "webcare.yml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def test_config_section_defaults_and_partial_http(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, "{}\n"), environ={}).crm.adapter == "sql"
    config = load_config(write_config(tmp_path, """
        crm:
          adapter: http
          timeout_seconds: 1.5
          http:
            base_url: https://crm.example.com/api
    """), environ={})
    assert config.crm.timeout_seconds == 1.5
    assert dataclasses.asdict(config.crm.http) == {"base_url": "https://crm.example.com/api", "token_env": "WEBCARE_CRM_TOKEN",
                                  "failure_threshold": 5, "reset_seconds": 30.0}


@pytest.mark.parametrize("body, message", [
    ("crm: {adapter: salesforce}", "crm.adapter: unknown CRM adapter 'salesforce'"),
    ("crm: {adapter: http}", "crm.http.base_url is not set"),
    ("crm: {http: {base_url: crm.example.com}}", "crm.http.base_url must be a URL"),
    ("crm: {timeout_seconds: 0}", "must be positive"),
    ("crm: {timeout_seconds: soon}", "must be numbers"),
    ("crm: {http: {failure_threshold: 0}}", "failure_threshold at least 1"),
    ("crm: {http: {password: x}}", "unknown key(s) ['password'] in 'crm.http'"),
    ("crm: {url: x}", "unknown key(s) ['url'] in 'crm'"),
])
def test_config_section_is_validated_at_start_up(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        check_crm_adapter(load_config(write_config(tmp_path, body + "\n"), environ={}))
    assert message in str(error.value)
