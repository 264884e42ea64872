#!/bin/bash
id www >/dev/null 2>&1 || useradd -r -M www
find /app/site -type d -exec chmod 755 {} +
find /app/site -type f -exec chmod 644 {} +
chmod 755 /app/site/bin/*
chown www /app/site/config/secret.key && chmod 600 /app/site/config/secret.key
