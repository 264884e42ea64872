#!/bin/bash
python3 - <<'EOF'
import sqlite3
name, cents = sqlite3.connect("/app/shop.db").execute(
    "SELECT c.name, sum(o.amount_cents) t FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.status = 'paid' GROUP BY c.id ORDER BY t DESC LIMIT 1").fetchone()
open("/app/answer.txt", "w").write(f"{name}\t{cents / 100:.2f}\n")
EOF
