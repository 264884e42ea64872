#!/bin/bash
cat > /app/calc/Makefile <<'EOF'
CC = gcc
CFLAGS = -Wall -O2

calc: main.o ops.o
	$(CC) $(CFLAGS) -o calc main.o ops.o

main.o: main.c ops.h
	$(CC) $(CFLAGS) -c main.c

ops.o: ops.c ops.h
	$(CC) $(CFLAGS) -c ops.c

clean:
	rm -f calc *.o

.PHONY: clean
EOF
cd /app/calc && make -s
