#!/bin/bash
ok=1
while IFS= read -r -d '' p; do
  m=$(stat -c %a "$p")
  case "$p" in
    /app/site/config/secret.key) [ "$m" = 600 ] && [ "$(stat -c %U "$p")" = www ] || ok=0 ;;
    /app/site/bin/*) [ "$m" = 755 ] || ok=0 ;;
    *) if [ -d "$p" ]; then [ "$m" = 755 ] || ok=0; else [ "$m" = 644 ] || ok=0; fi ;;
  esac
done < <(find /app/site -print0)
if [ "$ok" = 1 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
