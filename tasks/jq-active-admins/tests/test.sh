#!/bin/bash
cd /app
want=$'aa@example.com\nana@example.com\ndi@example.com'
if [ "$(cat admins.txt 2>/dev/null)" = "$want" ] && [ "$(jq -c -S . summary.json 2>/dev/null)" = '{"admin":3,"dev":1,"ops":1}' ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
