#!/bin/bash
cd /app/repo
leaks=$(git log --all --format=%H -- secrets.env | wc -l)
msgs=$(git log main --format=%s | grep -v '^remove secrets$')
want=$(grep -v '^remove secrets$' /opt/messages.txt)
if [ "$leaks" = 0 ] && [ "$msgs" = "$want" ] && [ "$(git show main:app.py)" = 'print("hello")' ] && git show main:README.md >/dev/null 2>&1 && [ -z "$(git status --porcelain)" ] && ! git rev-list --all --objects | grep -q secrets.env; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
