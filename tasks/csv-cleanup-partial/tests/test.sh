#!/bin/bash
cd /app
python3 - <<'EOF'
import json
def read(p):
    try:
        return open(p).read()
    except OSError:
        return None
clean = ("name,email,city\nAda,ada@math.org,London\nGrace,grace@navy.mil,Arlington\n"
         "Margaret,margaret@nasa.gov,Boston\nKen,ken@bell-labs.com,Murray Hill\n")
scores = {
    "clean": float(read("clean.csv") == clean),
    "domains": float(read("domains.txt") == "bell-labs.com\nmath.org\nnasa.gov\nnavy.mil\n"),
    "count": float((read("count.txt") or "").strip() == "4"),
}
scores["reward"] = sum(scores.values()) / 3
json.dump(scores, open("/logs/verifier/reward.json", "w"))
EOF
