import sqlite3
db = sqlite3.connect("/app/shop.db")
db.executescript('''
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INT, amount_cents INT, status TEXT);
INSERT INTO customers VALUES (1,'Ada'),(2,'Grace'),(3,'Linus');
INSERT INTO orders(customer_id, amount_cents, status) VALUES
  (1, 1250, 'paid'), (2, 9900, 'refunded'), (2, 3000, 'paid'), (3, 2500, 'paid'),
  (3, 2500, 'paid'), (1, 9999, 'pending'), (2, 1999, 'paid');
''')
db.commit()
