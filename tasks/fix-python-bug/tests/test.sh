#!/bin/bash
cd /app
if sha256sum -c /opt/test_stats.sha256 >/dev/null 2>&1 && python3 -m unittest test_stats; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
