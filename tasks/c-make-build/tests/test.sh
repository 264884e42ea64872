#!/bin/bash
cd /app/calc
ok=1
sha256sum -c /opt/sources.sha256 >/dev/null 2>&1 || ok=0
make clean >/dev/null 2>&1; [ -e calc ] && ok=0
make >/dev/null 2>&1 || ok=0
[ "$(./calc 2>/dev/null)" = "sum=42 product=42" ] || ok=0
if [ "$ok" = 1 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
