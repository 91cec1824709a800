"""Examination benchmark: one case against a book of 1,000 condition sets.

Sets are indexed by setter, so examining a step evaluates only its approver's sets that
cover the case. The book holds 1,000 sets spread over 200 approvers; the examined
approver has 5 of them, 4 conditions each (ranges, dates, code patterns, membership,
negation). Prints the median and 99th-percentile time per examination (the target is
under 10 ms), and, for scale, what evaluating every one of the 1,000 sets would cost
without the index (what the index saves; never done by the daemon).

    .venv/bin/python bench/conditions.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.conditions.examine import examine  # noqa: E402
from daemon.conditions.sets import ConditionBook, build_set  # noqa: E402

FIELDS = {"purchase": {"amount", "category", "material_code", "delivery_date", "quantity"}}
KINDS = {"amount": "money", "category": "choice", "material_code": "text",
         "delivery_date": "date", "quantity": "integer"}
CONDITIONS = [
    {"name": "budget", "expr": "case.amount <= {limit}"},
    {"name": "delivery", "expr": "case.delivery_date <= date('2027-03-31')"},
    {"name": "material", "expr": "case.material_code.startsWith('10') && "
                                 "!(case.category in ['weapons', 'services'])"},
    {"name": "quantity", "expr": "case.quantity >= 1 && case.quantity < {qty}"},
]


def book_of(n_sets: int, approvers: int) -> ConditionBook:
    book = ConditionBook()
    for i in range(n_sets):
        conditions = [{"name": c["name"], "expr": c["expr"].format(limit=100000 + i * 1000,
                                                                   qty=10 + i % 50)}
                      for c in CONDITIONS]
        book.add(build_set({"name": f"set{i}", "setter": f"approver{i % approvers}",
                            "subjects": {"case_types": ["purchase"],
                                         "units": [f"unit{i % 7}", "sales"]},
                            "conditions": conditions}, f"bench{i}", FIELDS))
    return book


def main() -> None:
    started = time.perf_counter()
    book = book_of(1000, 200)
    built = time.perf_counter() - started
    case = {"amount": "95000", "category": "equipment", "material_code": "1001",
            "delivery_date": "2026-12-01", "quantity": 3}
    times = []
    for _ in range(300):
        t = time.perf_counter()
        sets = book.for_approver("approver7", "purchase", "smith", {"sales", "hq"})
        exam = examine(sets, case, KINDS, {})
        times.append(time.perf_counter() - t)
    assert len(sets) == 5 and exam.passed, exam.summary()
    times.sort()
    print(f"condition sets: {len(book.sets)} (compiled in {built:.2f} s); examined per case: "
          f"{len(sets)} sets, {sum(len(s.conditions) for s in sets)} conditions")
    print(f"examine one case: median {statistics.median(times) * 1000:.2f} ms, "
          f"p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms (target < 10 ms)")
    every = []
    for _ in range(3):
        t = time.perf_counter()
        examine(list(book.sets), case, KINDS, {})
        every.append(time.perf_counter() - t)
    print(f"for scale, without the setter index (all {len(book.sets)} sets, "
          f"{sum(len(s.conditions) for s in book.sets)} conditions): "
          f"median {statistics.median(every) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
