#!/bin/bash
got=$(cd /app/photos && find . -type f | sort | tr '\n' ' ')
want="./2024/Trip/sunset.jpg ./2024/a.jpg ./beach.jpg ./img_001.jpg ./misc/Notes.TXT ./misc/cat.jpg "
if [ "$got" = "$want" ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
