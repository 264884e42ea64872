#!/bin/bash
printf 'ok' > /app/www/health
cat > /app/serve.sh <<'SH'
#!/bin/bash
cd /app/www && nohup python3 -m http.server 8000 --bind 127.0.0.1 >/tmp/http.log 2>&1 &
SH
chmod +x /app/serve.sh
