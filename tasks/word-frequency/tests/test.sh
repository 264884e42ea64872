#!/bin/bash
expected=$(python3 -c '
import re, collections
c = collections.Counter(re.findall("[a-z]+", open("/app/book.txt").read().lower()))
print("\n".join(f"{n} {w}" for w, n in sorted(c.items(), key=lambda x: (-x[1], x[0]))[:5]))
')
if [ "$(cat /app/top5.txt 2>/dev/null)" = "$expected" ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
