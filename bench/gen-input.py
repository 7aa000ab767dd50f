#!/usr/bin/python3
"""Deterministic synthetic input for bench/run.sh's memory scenario (MEMORY=1).

  gen-input.py DIR BYTES [--seed S]

Writes a tree of regular files under DIR whose sizes add up to exactly BYTES.
Every byte is a pure function of (seed, BYTES): two runs give the same tree.
The content never repeats, so nothing deduplicates and the chunk index grows
with the input, which is what a memory test needs:

  * file sizes: 97% log-uniform 256 B..128 KiB, 2.9% log-uniform
    128 KiB..8 MiB, 0.1% log-uniform 32..256 MiB (about 7k files per GB)
  * 100 files per directory, two levels (dNNN/dNNN/fNNNNNNN.bin)
  * content: alternating 64 KiB segments of pseudo-random bytes (does not
    compress) and hex text (compresses about 2:1), so roughly 0.7 of the
    input survives LZ4
  * mtimes fixed from the seed

DIR must not exist (or be empty). Prints a one-line summary.
"""
import os
import random
import sys

SEG = 64 << 10
BASE_TIME = 1700000000


def size_of(r):
    u = r.random()
    if u < 0.97:
        lo, hi = 256, 128 << 10
    elif u < 0.999:
        lo, hi = 128 << 10, 8 << 20
    else:
        lo, hi = 32 << 20, 256 << 20
    return int(lo * (hi / lo) ** r.random())


def write_file(path, n, r):
    left = n
    text = False
    with open(path, "wb") as f:
        while left > 0:
            k = min(SEG, left)
            if text:
                f.write(r.randbytes((k + 1) // 2).hex().encode()[:k])
            else:
                f.write(r.randbytes(k))
            text = not text
            left -= k


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    root, total = argv[1], int(argv[2])
    seed = "ptar-bench-mem"
    if "--seed" in argv:
        seed = argv[argv.index("--seed") + 1]
    r = random.Random("%s/%d" % (seed, total))
    os.makedirs(root, exist_ok=True)
    if os.listdir(root):
        print("gen-input.py: %s is not empty" % root, file=sys.stderr)
        return 2
    done = 0
    i = 0
    dirs = set()
    while done < total:
        n = min(size_of(r), total - done)
        d = os.path.join(root, "d%03d" % (i // 10000), "d%03d" % (i // 100 % 100))
        if d not in dirs:
            os.makedirs(d, exist_ok=True)
            dirs.add(d)
        p = os.path.join(d, "f%07d.bin" % i)
        write_file(p, n, r)
        t = BASE_TIME + i
        os.utime(p, (t, t))
        done += n
        i += 1
    for d in sorted(dirs | {os.path.dirname(d) for d in dirs} | {root}, key=len, reverse=True):
        os.utime(d, (BASE_TIME, BASE_TIME))
    print("gen-input: dir=%s files=%d dirs=%d bytes=%d seed=%s" % (root, i, len(dirs), done, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
