#!/bin/bash
cd /app/repo
git -c core.quotepath=off filter-branch -f --index-filter \
  'git rm -q --cached --ignore-unmatch secrets.env' -- main >/dev/null 2>&1
rm -rf .git/refs/original
git reflog expire --expire=now --all && git gc -q --prune=now
