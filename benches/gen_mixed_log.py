#!/usr/bin/env python3
"""Seeded mixed syslog log for the all-parsers replay benchmark (benches/mixed.sh):
equal shares of sshd, nginx access (through syslog), postfix smtpd and kernel netfilter
log lines, from a few thousand sources, mostly benign, some attackers.

    python3 benches/gen_mixed_log.py N [--seed S] -o FILE
"""
import argparse
import random

p = argparse.ArgumentParser()
p.add_argument("n", type=int)
p.add_argument("--seed", type=int, default=42)
p.add_argument("-o", required=True)
a = p.parse_args()
rnd = random.Random(a.seed)
pool = ["198.51.%d.%d" % (rnd.randint(0, 255), rnd.randint(1, 254)) for _ in range(5000)]
paths = ["/", "/index.html", "/img/a.png", "/css/site.css", "/blog/post-%d", "/wp-login.php",
         "/.env", "/phpmyadmin/", "/a/../../etc/passwd", "/api/v1/items?id=%d"]
with open(a.o, "w") as out:
    for i in range(a.n):
        s = i // 20
        ts = "2026-11-28T%02d:%02d:%02d+00:00" % ((s // 3600) % 24, (s // 60) % 60, s % 60)
        ip = rnd.choice(pool)
        k = i % 4
        if k == 0:
            m = rnd.choice([
                "Failed password for root from %s port 4242 ssh2" % ip,
                "Accepted publickey for bob from %s port 22 ssh2: ED25519 SHA256:abc" % ip,
                "pam_unix(sshd:session): session opened for user bob(uid=1000) by (uid=0)",
                "Connection closed by %s port 5000 [preauth]" % ip,
            ])
            out.write(f"{ts} host sshd[{1000 + i % 5000}]: {m}\n")
        elif k == 1:
            st = rnd.choice([200, 200, 200, 304, 404, 403])
            path = rnd.choice(paths)
            if "%d" in path:
                path = path % rnd.randint(1, 99)
            out.write(f'{ts} web nginx: {ip} - - [28/Nov/2026:10:00:00 +0000] "GET {path} HTTP/1.1" '
                      f'{st} 512 "https://example.org/" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"\n')
        elif k == 2:
            m = rnd.choice([
                f"warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
                f"connect from unknown[{ip}]",
                f"NOQUEUE: reject: RCPT from unknown[{ip}]: 554 5.7.1 <a@b.c>: Relay access denied; from=<x@y> to=<a@b.c> proto=ESMTP helo=<h>",
                f"disconnect from unknown[{ip}] ehlo=1 quit=1 commands=2",
            ])
            out.write(f"{ts} mx postfix/smtpd[{2000 + i % 300}]: {m}\n")
        else:
            out.write(f"{ts} gw kernel: [ 1234.567890] drop: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
                      f"SRC={ip} DST=192.0.2.1 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=54321 PROTO=TCP SPT=61000 "
                      f"DPT={rnd.randint(1, 65535)} WINDOW=1024 RES=0x00 SYN URGP=0\n")
