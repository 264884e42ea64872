#!/bin/bash
got=$(jq -c -S . /app/report.json 2>/dev/null)
if [ "$got" = '{"bytes":5348,"errors":3,"requests":7,"top_ip":"10.0.0.1"}' ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
