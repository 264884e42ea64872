#!/bin/bash
cd /app && tar --exclude='*.tmp' --exclude='data/cache' -czf backup.tar.gz data
sha256sum backup.tar.gz | cut -d' ' -f1 > backup.sha256
