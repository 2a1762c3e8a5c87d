#!/usr/bin/env python3
"""Checks that `otgrid verify --suite zoo` still gives the outcome and iteration count of
every row of the zoo table in docs/ot.md (a behaviour check after refactoring).

    python3 benches/zoo_compare.py [path/to/otgrid]

Prints the rows that differ and a count; exits 1 if any row differs.
"""
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/otgrid")
table = {}
row = re.compile(r"^\| ([a-z0-9-]+) \| (\d+) \| (\w+) \| (\d+) \|")
for line in (ROOT / "docs/ot.md").read_text().splitlines():
    m = row.match(line)
    if m:
        table[(m.group(1), int(m.group(2)))] = (m.group(3), int(m.group(4)))
out = subprocess.run([binary, "verify", "--suite", "zoo", "--json"], capture_output=True, text=True)
rows = json.loads(out.stdout)["rows"]
same = differ = 0
for r in rows:
    key = (r["case"], r["cells"])
    if key not in table:
        print("not in the table:", key)
        continue
    if table[key] == (r["outcome"], r["iterations"]):
        same += 1
    else:
        differ += 1
        print("differs:", key, "table", table[key], "now", (r["outcome"], r["iterations"]))
print(f"{same} rows as in docs/ot.md, {differ} differ")
sys.exit(1 if differ else 0)
