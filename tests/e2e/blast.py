"""Integrity blaster: both ends send NBYTES of pseudo-random data in random-sized writes while
reading everything the other end sends; each prints the SHA-256 of what it sent and received.

  blast.py serve HOST PORT NBYTES SEED   (accepts one connection; prints JSON, exits)
  blast.py client HOST PORT NBYTES SEED
"""
import hashlib
import json
import random
import socket
import sys
import threading


def sender(sock, nbytes, seed, out):
    rnd = random.Random(seed)
    pool = rnd.randbytes(8 << 20)
    view = memoryview(pool)
    h = hashlib.sha256()
    left = nbytes
    while left:
        # Mostly small and odd sizes, sometimes large: exercises partial reads and writes.
        n = min(left, rnd.choice((1, 7, 100, 1460, 4096, 65535, 65536, 200000, 1 << 20)) +
                rnd.randrange(0, 64))
        off = rnd.randrange(0, len(pool) - n)
        chunk = view[off:off + n]
        sock.sendall(chunk)
        h.update(chunk)
        left -= n
    sock.shutdown(socket.SHUT_WR)
    out["sent_sha"] = h.hexdigest()
    out["sent_bytes"] = nbytes


def receiver(sock, out):
    h = hashlib.sha256()
    total = 0
    buf = bytearray(1 << 20)
    while True:
        n = sock.recv_into(buf)
        if n == 0:
            break
        h.update(memoryview(buf)[:n])
        total += n
    out["recv_sha"] = h.hexdigest()
    out["recv_bytes"] = total


def run(sock, nbytes, seed):
    # Non-blocking I/O with poll, the way libpq, psycopg and node-postgres drive their sockets.
    # (With --accel sockmap, Linux's tcp_bpf_recvmsg() can hand a *blocking* recv() a spurious
    # EAGAIN while the same socket is sending; see docs/interception.md.)
    sock.settimeout(600)
    out = {}
    t = threading.Thread(target=receiver, args=(sock, out))
    t.start()
    sender(sock, nbytes, seed, out)
    t.join()
    sock.close()
    return out


def main():
    mode, host, port, nbytes, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    if mode == "serve":
        ls = socket.socket(fam)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(1)
        print("ready", flush=True)
        s, _ = ls.accept()
        ls.close()
        out = run(s, nbytes, seed)
    else:
        s = socket.create_connection((host, port))
        out = run(s, nbytes, seed)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
