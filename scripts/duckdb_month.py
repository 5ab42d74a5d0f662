"""The month's bills as DuckDB computes them from billrun's own input files.

What a finance engineer might write instead of billrun: one query over accounts.csv and
usage.csv that totals each account's calls per API in the billing month (Asia/Shanghai),
takes the 1,000-call free pack per API off, prices the rest at the volume tier the month's
total calls reach (the seed's catalog: docs/rules.md), and rounds each bill half-up to 0.01.
No prepaid packs (`billrun gen` writes none), no ledger, no audit trail, no idempotency.

    duckdb_month.py ACCOUNTS_CSV USAGE_CSV BILLS_EXPORT_CSV

Prints the seconds DuckDB took (reading both files included) and checks that every bill total
equals the one billrun exported for the same account (revision 1); exits 1 if any differs.
"""

import csv
import sys
import time
from decimal import Decimal

import duckdb

MONTH_START = "2026-09-30 16:00:00+00"  # 2026-10-01 00:00 in Asia/Shanghai
MONTH_END = "2026-10-31 16:00:00+00"

# (API, [tier prices for < 1M, 1M–3M, 3M–15M, >= 15M calls]); free pack 1,000 calls each.
PRICES = {
    "AssessQuality": ["0.003", "0.0025", "0.002", "0.0015"],
    "CropImage": ["0.002", "0.0015", "0.0012", "0.001"],
    "EnhanceImage": ["0.008", "0.0075", "0.007", "0.006"],
}


def price_case() -> str:
    arms = []
    for api, (p1, p2, p3, p4) in PRICES.items():
        arms.append(
            f"WHEN '{api}' THEN CASE WHEN total < 1000000 THEN {p1}::DECIMAL(12,6) "
            f"WHEN total < 3000000 THEN {p2}::DECIMAL(12,6) "
            f"WHEN total < 15000000 THEN {p3}::DECIMAL(12,6) ELSE {p4}::DECIMAL(12,6) END"
        )
    return "CASE api " + " ".join(arms) + " END"


def main() -> int:
    accounts, usage, export = sys.argv[1:4]
    query = f"""
    WITH usage AS (
        SELECT account_id, api, SUM(calls)::BIGINT AS total
        FROM read_csv('{usage}', header = true,
            columns = {{'account_id': 'VARCHAR', 'api': 'VARCHAR', 'timestamp': 'TIMESTAMPTZ', 'calls': 'BIGINT'}})
        WHERE timestamp >= TIMESTAMPTZ '{MONTH_START}' AND timestamp < TIMESTAMPTZ '{MONTH_END}'
        GROUP BY account_id, api
    ), open AS (
        SELECT account_id FROM read_csv('{accounts}', header = true,
            columns = {{'account_id': 'VARCHAR', 'name': 'VARCHAR', 'activated_at': 'TIMESTAMPTZ', 'balance': 'VARCHAR'}})
        WHERE activated_at < TIMESTAMPTZ '{MONTH_END}'
    ), lines AS (
        SELECT u.account_id, u.api, u.total,
               u.total - LEAST(u.total, CASE WHEN o.account_id IS NULL THEN 0 ELSE 1000 END) AS billable,
               {price_case()} AS price
        FROM usage u LEFT JOIN open o USING (account_id)
    )
    SELECT account_id, ROUND(SUM(billable * price), 2)::VARCHAR AS total
    FROM lines GROUP BY account_id
    """
    con = duckdb.connect()
    started = time.perf_counter()
    bills = con.execute(query).fetchall()
    seconds = time.perf_counter() - started

    ours = {account: Decimal(total) for account, total in bills}
    # Every line of a bill carries its total: each is checked.
    differ, billed = [], set()
    with open(export, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["revision"] != "1":
                continue
            account = row["account_id"]
            billed.add(account)
            if ours.get(account) != Decimal(row["bill_total"]):
                differ.append(f"{account}: DuckDB {ours.get(account)}, billrun {row['bill_total']}")
    differ += [f"{a}: DuckDB {ours[a]}, billrun no bill" for a in sorted(ours.keys() - billed)]
    if differ:
        for d in differ[:10]:
            print(d, file=sys.stderr)
        print(f"{len(differ)} bill lines or bills differ between DuckDB and billrun", file=sys.stderr)
        return 1
    print(f"{seconds:.2f} {len(ours)} {sum(ours.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
