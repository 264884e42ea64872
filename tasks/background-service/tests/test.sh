#!/bin/bash
reward=0
if [ -x /app/serve.sh ] && timeout 10 /app/serve.sh; then
  for i in $(seq 50); do
    if [ "$(curl -s --max-time 2 http://127.0.0.1:8000/health)" = ok ]; then reward=1; break; fi
    sleep 0.1
  done
fi
echo $reward > /logs/verifier/reward.txt
