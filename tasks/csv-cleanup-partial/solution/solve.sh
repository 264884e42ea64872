#!/bin/bash
cd /app
python3 - <<'EOF'
import csv
rows = [[f.strip() for f in r] for r in csv.reader(open("raw.csv"))]
header, body = rows[0], [r for r in rows[1:] if r[1]]
with open("clean.csv", "w", newline="") as f:
    csv.writer(f, lineterminator="\n").writerows([header, *body])
open("domains.txt", "w").write("\n".join(sorted({r[1].split("@")[1] for r in body})) + "\n")
open("count.txt", "w").write(f"{len(body)}\n")
EOF
