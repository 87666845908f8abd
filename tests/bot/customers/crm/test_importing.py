"""``webcare crm import``: validate everything first, then upsert customers and contracts."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.customers.crm.importing import import_crm
from bot.store.database import Store
from bot.store.models import CrmContract, CrmCustomerRecord

GOOD_CUSTOMERS = """\
Customer_Number,name,postcode,house_number,email,phone,segment
C-1,Ann de Vries,1234 ab,12a,ann@example.org,0612345678,vip
C-2,"Jansen, Bob",9999ZZ,7,,,
"""

GOOD_CONTRACTS = """\
contract_id;customer_number;product;status;start_date;end_date;monthly_amount
K-1;C-1;Fibre 1000;active;2023-01-01;;45,50
K-2;C-2;DSL;ended;2019-05-01;2022-04-30;19.99
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(f"sqlite:///{tmp_path}/crm.db")
    yield store
    store.close()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def count(store: Store, model) -> int:  # type: ignore[no-untyped-def]
    return store.transaction(lambda s: s.execute(select(func.count()).select_from(model)).scalar_one())


def customers(store: Store) -> dict:
    return store.transaction(lambda s: {r.customer_number: r for r in s.execute(select(CrmCustomerRecord)).scalars()})


def test_good_files_are_imported_and_normalised(store: Store, tmp_path: Path) -> None:
    report = import_crm(store, write(tmp_path, "c.csv", GOOD_CUSTOMERS), write(tmp_path, "k.csv", GOOD_CONTRACTS))
    assert report.ok and report.errors == []
    assert (report.customers_created, report.customers_updated, report.contracts_created) == (2, 0, 2)
    rows = customers(store)
    ann, bob = rows["C-1"], rows["C-2"]
    assert (ann.name, ann.postcode, ann.house_number, ann.email, ann.segment) == (
        "Ann de Vries", "1234AB", "12A", "ann@example.org", "vip")
    assert (bob.name, bob.email, bob.phone, bob.segment) == ("Jansen, Bob", None, None, None)
    contracts = store.transaction(lambda s: {c.contract_id: c for c in s.execute(select(CrmContract)).scalars()})
    assert contracts["K-1"].monthly_amount_cents == 4550 and contracts["K-1"].end_date is None
    assert contracts["K-2"].monthly_amount_cents == 1999
    assert (contracts["K-2"].start_date, contracts["K-2"].end_date) == (dt.date(2019, 5, 1), dt.date(2022, 4, 30))


def test_reimport_upserts_on_customer_number(store: Store, tmp_path: Path) -> None:
    import_crm(store, write(tmp_path, "c.csv", GOOD_CUSTOMERS), write(tmp_path, "k.csv", GOOD_CONTRACTS))
    created = customers(store)["C-1"].created_at
    changed = write(tmp_path, "c2.csv", "customer_number,name,postcode,house_number\n"
                                        "C-1,Ann Bakker,1234AB,14\nC-3,Cas,1000AA,1\n")
    contract = write(tmp_path, "k2.csv", "contract_id,customer_number,status\nK-1,C-1,ended\nK-3,C-3,active\n")
    report = import_crm(store, changed, contract)
    assert (report.customers_created, report.customers_updated) == (1, 1)
    assert (report.contracts_created, report.contracts_updated) == (1, 1)
    rows = customers(store)
    assert len(rows) == 3
    assert (rows["C-1"].name, rows["C-1"].house_number, rows["C-1"].email) == ("Ann Bakker", "14", None)
    assert rows["C-1"].created_at == created and rows["C-1"].updated_at > created
    assert count(store, CrmContract) == 3
    # contracts may refer to customers that are already in the CRM
    report = import_crm(store, write(tmp_path, "c3.csv", "customer_number,name,postcode,house_number\n"),
                        write(tmp_path, "k3.csv", "contract_id,customer_number\nK-9,C-2\n"))
    assert report.ok and report.contracts_created == 1


def test_bad_files_are_reported_with_line_numbers_and_nothing_is_written(store: Store, tmp_path: Path) -> None:
    bad_customers = write(tmp_path, "c.csv", (
        "customer_number,name,postcode,house_number\n"
        "C-1,Ann,1234AB,12\n"
        ",Nobody,1234AB,13\n"
        "C-1,Ann again,1234AB,12\n"
        "C-4,Dirk,12345,4\n"
        "\n"
        "C-5,Eva,1234AB,twelve\n"
        "C-6,\"Multi\nline\",1000AA,1\n"
        "C-7,Fay,1000AA\n"
    ))
    bad_contracts = write(tmp_path, "k.csv", (
        "contract_id,customer_number,start_date,end_date,monthly_amount\n"
        "K-1,C-1,2023-13-01,,10\n"
        "K-1,C-1,,,\n"
        "K-2,C-404,,,\n"
        "K-3,C-1,2023-02-01,2023-01-01,ten\n"
    ))
    report = import_crm(store, bad_customers, bad_contracts)
    assert not report.ok
    assert report.errors == [
        f"{bad_customers} line 3: customer_number is empty",
        f"{bad_customers} line 4: customer_number 'C-1' is already on line 2",
        f"{bad_customers} line 5: postcode '12345' is not a postcode like 1234AB",
        f"{bad_customers} line 7: house_number 'twelve' is not like 12 or 12A",
        f"{bad_customers} line 10: 3 field(s), the header has 4",
        f"{bad_contracts} line 2: start_date '2023-13-01' is not a date like 2024-01-31",
        f"{bad_contracts} line 3: contract_id 'K-1' is already on line 2",
        f"{bad_contracts} line 4: customer_number 'C-404' is neither in the customers file nor in the CRM",
        f"{bad_contracts} line 5: end_date is before start_date",
        f"{bad_contracts} line 5: monthly_amount 'ten' is not an amount like 12.50",
    ]
    assert count(store, CrmCustomerRecord) == 0 and count(store, CrmContract) == 0


def test_unknown_customer_in_contracts_writes_nothing(store: Store, tmp_path: Path) -> None:
    report = import_crm(store, write(tmp_path, "c.csv", GOOD_CUSTOMERS),
                        write(tmp_path, "k.csv", "contract_id,customer_number\nK-1,C-1\nK-2,C-404\n"))
    assert report.errors == [f"{tmp_path / 'k.csv'} line 3: customer_number 'C-404' is neither in the "
                             "customers file nor in the CRM"]
    assert report.customers_created == 0
    assert count(store, CrmCustomerRecord) == 0 and count(store, CrmContract) == 0


def test_missing_columns_and_files(store: Store, tmp_path: Path) -> None:
    report = import_crm(store, write(tmp_path, "c.csv", "customer_number,name,zip\nC-1,Ann,1234AB\n"))
    assert report.errors == [f"{tmp_path / 'c.csv'} line 1: missing column(s) postcode, house_number "
                             "(required: customer_number, name, postcode, house_number; optional: email, phone, segment)"]
    report = import_crm(store, tmp_path / "nope.csv")
    assert report.errors == [f"{tmp_path / 'nope.csv'}: no such file"]
    report = import_crm(store, write(tmp_path, "empty.csv", ""))
    assert "line 1: no header" in report.errors[0]
    assert count(store, CrmCustomerRecord) == 0


def test_cli_exit_codes_and_output(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("WEBCARE_DATABASE_URL", url)
    monkeypatch.delenv("WEBCARE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no webcare.yml here: the defaults
    bad = write(tmp_path, "bad.csv", "customer_number,name,postcode,house_number\nC-1,Ann,nope,1\n")
    assert main(["crm", "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} line 2: postcode 'nope' is not a postcode like 1234AB" in err
    assert "nothing imported: 1 problem(s)" in err

    good = write(tmp_path, "c.csv", GOOD_CUSTOMERS)
    contracts = write(tmp_path, "k.csv", GOOD_CONTRACTS)
    assert main(["crm", "import", str(good), "--contracts", str(contracts)]) == 0
    assert capsys.readouterr().out.strip() == (
        "imported customers: 2 created, 0 updated; contracts: 2 created, 0 updated")
    store = Store.from_url(url)
    try:
        assert count(store, CrmCustomerRecord) == 2 and count(store, CrmContract) == 2
    finally:
        store.close()
