#!/bin/bash
cd /app
python3 - <<'EOF'
import collections, json
rows = [l.split() for l in open("access.log") if l.strip()]
ips = collections.Counter(r[0] for r in rows)
json.dump({"requests": len(rows), "errors": sum(r[-2].startswith("5") for r in rows),
           "top_ip": ips.most_common(1)[0][0],
           "bytes": sum(0 if r[-1] == "-" else int(r[-1]) for r in rows)},
          open("report.json", "w"))
EOF
