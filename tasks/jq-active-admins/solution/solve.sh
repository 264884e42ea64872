#!/bin/bash
cd /app
jq -r '.[] | select(.active and .role == "admin") | .email' users.json | sort > admins.txt
jq 'map(select(.active)) | group_by(.role) | map({(.[0].role): length}) | add' users.json > summary.json
