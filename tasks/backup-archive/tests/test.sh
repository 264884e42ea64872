#!/bin/bash
cd /app
got=$(tar -tzf backup.tar.gz 2>/dev/null | grep -v '/$' | sort | tr '\n' ' ')
sum_ok=0; [ "$(cat backup.sha256 2>/dev/null)" = "$(sha256sum backup.tar.gz | cut -d' ' -f1)" ] && sum_ok=1
if [ "$got" = "data/docs/a.txt data/img/d.png " ] && [ "$sum_ok" = 1 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
