"""``webcare crm import``: load customers (and contracts) from CSV into the SQL CRM.

Everything is validated before anything is written: one bad row means nothing is imported
and the report lists every problem with its file and line number. Otherwise customers are
upserted on ``customer_number`` and contracts on ``contract_id``, in one transaction.

customers.csv: ``customer_number``, ``name``, ``postcode``, ``house_number`` (required
columns), ``email``, ``phone``, ``segment`` (optional). contracts.csv: ``contract_id``,
``customer_number`` (required), ``product``, ``status``, ``start_date``, ``end_date``
(YYYY-MM-DD), ``monthly_amount`` (e.g. ``12.50`` or ``12,50``) (optional). Headers are
case-insensitive; the delimiter may be a comma, semicolon or tab; UTF-8 (with or without BOM).
"""
from __future__ import annotations

import csv
import datetime as dt
import decimal
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.customers.crm.base import normalize_house_number, normalize_postcode
from bot.store.database import Store
from bot.store.models import CrmContract, CrmCustomerRecord, utcnow

logger = logging.getLogger(__name__)

CUSTOMER_COLUMNS = ("customer_number", "name", "postcode", "house_number")
CUSTOMER_OPTIONAL = ("email", "phone", "segment")
CONTRACT_COLUMNS = ("contract_id", "customer_number")
CONTRACT_OPTIONAL = ("product", "status", "start_date", "end_date", "monthly_amount")
_LIMITS = {"customer_number": 64, "contract_id": 64, "name": 200, "email": 254, "phone": 40,
           "segment": 40, "product": 120, "status": 24}
_CHUNK = 500


@dataclass
class ImportReport:
    """What an import found and did; ``errors`` non-empty means nothing was written."""

    errors: List[str] = field(default_factory=list)
    customers_created: int = 0
    customers_updated: int = 0
    contracts_created: int = 0
    contracts_updated: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (f"customers: {self.customers_created} created, {self.customers_updated} updated; "
                f"contracts: {self.contracts_created} created, {self.contracts_updated} updated")


Problem = Tuple[str, int, str]  # (file, line, what is wrong); line 0: the file itself


def _read(path: Path, required: Sequence[str], optional: Sequence[str],
          errors: List[Problem]) -> List[Tuple[int, Dict[str, str]]]:
    """``(line number, {column: stripped value})`` per data row; problems go to ``errors``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        errors.append((str(path), 0, "no such file"))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        errors.append((str(path), 0, f"cannot read it as UTF-8: {exc}"))
        return []
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].strip():
        errors.append((str(path), 1, f"no header (expected columns {', '.join(required)})"))
        return []
    try:
        dialect: Any = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(lines, dialect)
    header = [name.strip().lower() for name in next(reader)]
    missing = [name for name in required if name not in header]
    if missing:
        errors.append((str(path), 1, f"missing column(s) {', '.join(missing)} "
                      f"(required: {', '.join(required)}; optional: {', '.join(optional)})"))
        return []
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        errors.append((str(path), 1, f"column(s) {', '.join(duplicated)} appear more than once"))
        return []
    wanted = set(required) | set(optional)
    rows: List[Tuple[int, Dict[str, str]]] = []
    line = reader.line_num
    for values in reader:
        start, line = line + 1, reader.line_num
        if not any(value.strip() for value in values):
            continue  # blank line
        if len(values) != len(header):
            errors.append((str(path), start, f"{len(values)} field(s), the header has {len(header)}"))
            continue
        rows.append((start, {name: value.strip() for name, value in zip(header, values) if name in wanted}))
    return rows


def _check_lengths(path: Path, line: int, row: Dict[str, str], errors: List[Problem]) -> None:
    for name, limit in _LIMITS.items():
        if len(row.get(name, "")) > limit:
            errors.append((str(path), line, f"{name} is longer than {limit} characters"))


def _parse_date(value: str) -> Optional[dt.date]:
    return dt.date.fromisoformat(value) if value else None


def _parse_cents(value: str) -> Optional[int]:
    if not value:
        return None
    amount = decimal.Decimal(value.replace(",", ".") if value.count(",") == 1 and "." not in value else value)
    if not amount.is_finite() or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise decimal.InvalidOperation
    return int(amount * 100)


def read_customers(path: Path, errors: List[Problem]) -> Dict[str, Dict[str, Any]]:
    """Validated customer rows by customer number; problems go to ``errors``."""
    customers: Dict[str, Dict[str, Any]] = {}
    first_line: Dict[str, int] = {}
    for line, row in _read(path, CUSTOMER_COLUMNS, CUSTOMER_OPTIONAL, errors):
        number = row["customer_number"]
        if not number:
            errors.append((str(path), line, "customer_number is empty"))
            continue
        if number in first_line:
            errors.append((str(path), line, f"customer_number {number!r} is already on line {first_line[number]}"))
            continue
        first_line[number] = line
        _check_lengths(path, line, row, errors)
        record: Dict[str, Any] = {"customer_number": number}
        for name in ("name", *CUSTOMER_OPTIONAL):
            record[name] = row.get(name) or None
        try:
            record["postcode"] = normalize_postcode(row["postcode"]) if row["postcode"] else None
        except ValueError:
            errors.append((str(path), line, f"postcode {row['postcode']!r} is not a postcode like 1234AB"))
        try:
            record["house_number"] = normalize_house_number(row["house_number"]) if row["house_number"] else None
        except ValueError:
            errors.append((str(path), line, f"house_number {row['house_number']!r} is not like 12 or 12A"))
        customers[number] = record
    return customers


def read_contracts(path: Path, errors: List[Problem]) -> Dict[str, Dict[str, Any]]:
    """Validated contract rows by contract id (customer numbers not yet checked)."""
    contracts: Dict[str, Dict[str, Any]] = {}
    first_line: Dict[str, int] = {}
    for line, row in _read(path, CONTRACT_COLUMNS, CONTRACT_OPTIONAL, errors):
        contract_id, number = row["contract_id"], row["customer_number"]
        if not contract_id:
            errors.append((str(path), line, "contract_id is empty"))
            continue
        if contract_id in first_line:
            errors.append((str(path), line, f"contract_id {contract_id!r} is already on line {first_line[contract_id]}"))
            continue
        first_line[contract_id] = line
        if not number:
            errors.append((str(path), line, "customer_number is empty"))
        _check_lengths(path, line, row, errors)
        record: Dict[str, Any] = {"contract_id": contract_id, "customer_number": number, "line": line,
                                  "product": row.get("product") or None, "status": row.get("status") or None}
        for name in ("start_date", "end_date"):
            try:
                record[name] = _parse_date(row.get(name, ""))
            except ValueError:
                errors.append((str(path), line, f"{name} {row[name]!r} is not a date like 2024-01-31"))
                record[name] = None
        if record["start_date"] and record["end_date"] and record["end_date"] < record["start_date"]:
            errors.append((str(path), line, "end_date is before start_date"))
        try:
            record["monthly_amount_cents"] = _parse_cents(row.get("monthly_amount", ""))
        except (decimal.InvalidOperation, ValueError):
            errors.append((str(path), line, f"monthly_amount {row['monthly_amount']!r} is not an amount like 12.50"))
        contracts[contract_id] = record
    return contracts


def _chunks(values: Iterable[str]) -> Iterable[List[str]]:
    values = list(values)
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def _existing_numbers(session: Session, numbers: Set[str]) -> Set[str]:
    found: Set[str] = set()
    for chunk in _chunks(numbers):
        found.update(session.execute(
            select(CrmCustomerRecord.customer_number).where(CrmCustomerRecord.customer_number.in_(chunk))
        ).scalars())
    return found


def _unknown_customers(session: Session, customers: Dict[str, Dict[str, Any]],
                       contracts: Dict[str, Dict[str, Any]], contracts_path: Optional[Path]) -> List[Problem]:
    """Contracts whose customer is neither in the customers file nor in the store."""
    unknown = {c["customer_number"] for c in contracts.values() if c["customer_number"]} - set(customers)
    unknown -= _existing_numbers(session, unknown)
    return [(str(contracts_path), c["line"],
             f"customer_number {c['customer_number']!r} is neither in the customers file nor in the CRM")
            for c in contracts.values() if c["customer_number"] in unknown]


def _write(session: Session, customers: Dict[str, Dict[str, Any]], contracts: Dict[str, Dict[str, Any]],
           report: ImportReport) -> None:
    """Upsert customers on their number, then contracts on their id."""
    now = utcnow()
    for chunk in _chunks(customers):
        existing = {r.customer_number: r for r in session.execute(
            select(CrmCustomerRecord).where(CrmCustomerRecord.customer_number.in_(chunk))).scalars()}
        for number in chunk:
            values = customers[number]
            record = existing.get(number)
            if record is None:
                session.add(CrmCustomerRecord(**values, created_at=now, updated_at=now))
                report.customers_created += 1
            else:
                for name, value in values.items():
                    setattr(record, name, value)
                record.updated_at = now
                report.customers_updated += 1
    session.flush()  # contracts refer to the customers by number
    for chunk in _chunks(contracts):
        existing_contracts = {c.contract_id: c for c in session.execute(
            select(CrmContract).where(CrmContract.contract_id.in_(chunk))).scalars()}
        for contract_id in chunk:
            values = {k: v for k, v in contracts[contract_id].items() if k != "line"}
            contract = existing_contracts.get(contract_id)
            if contract is None:
                session.add(CrmContract(**values, created_at=now))
                report.contracts_created += 1
            else:
                for name, value in values.items():
                    setattr(contract, name, value)
                report.contracts_updated += 1


class _Rejected(Exception):
    """Raised inside the transaction so that nothing is committed."""


def _format(problems: List[Problem], files: List[str]) -> List[str]:
    """Problems in file order, then line order: ``"FILE line N: what"``."""
    order = {name: index for index, name in enumerate(files)}
    ordered = sorted(enumerate(problems), key=lambda p: (order.get(p[1][0], len(files)), p[1][1], p[0]))
    return [f"{name}: {what}" if line == 0 else f"{name} line {line}: {what}" for _, (name, line, what) in ordered]


def import_crm(store: Store, customers_path: Path, contracts_path: Optional[Path] = None) -> ImportReport:
    """Validate both files completely, then upsert them in one transaction (or write nothing)."""
    report = ImportReport()
    problems: List[Problem] = []
    customers_path = Path(customers_path)
    contracts_path = Path(contracts_path) if contracts_path else None
    customers = read_customers(customers_path, problems)
    contracts = read_contracts(contracts_path, problems) if contracts_path else {}

    def write(session: Session) -> None:
        problems.extend(_unknown_customers(session, customers, contracts, contracts_path))
        if problems:
            raise _Rejected
        _write(session, customers, contracts, report)

    try:
        store.transaction(write)
    except _Rejected:
        report = ImportReport(errors=_format(problems, [str(customers_path), str(contracts_path)]))
        logger.warning("CRM import refused: %d problem(s)", len(report.errors))
        return report
    logger.info("CRM import: %s", report.summary())
    return report
