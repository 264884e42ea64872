#!/bin/bash
printf 'ok' > /app/www/health
cd /app/www && nohup python3 -m http.server 8000 --bind 127.0.0.1 >/tmp/http.log 2>&1 &
for i in $(seq 50); do curl -sf http://127.0.0.1:8000/health >/dev/null && break; sleep 0.1; done
