#!/bin/bash
if [ "$(curl -s --max-time 5 http://127.0.0.1:8000/health)" = ok ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
