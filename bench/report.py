#!/usr/bin/python3
"""Markdown report of a bench/run.sh run: ptar against the peer tools.

  report.py RESULTS.csv [MORE.csv ...] > report.md

Reads the CSV schema of the shared peers.sh (tool,dataset,scenario,wall_s,...),
plus RESULTS.csv.meta if bench/run.sh wrote one (machine, versions, skips).
When a (tool, dataset, scenario) appears twice, the last line wins.

Per dataset it prints the absolute figures of every tool, then for each ptar
tool (ptar, ptar-enc, ptar-VARIANT) its ratios ptar/peer for every peer, then
the project's targets with pass/fail. Datasets named mem-* (MEMORY=1) get a
memory section. MB = 1e6 bytes, MiB = 2^20 bytes; RSS is the peak of the
largest single process of a step; MB/s is over the dataset's logical size
(the repository size for check).
"""
import csv
import os
import platform
import sys
import time
from collections import OrderedDict

SCEN = ["backup-v1", "backup-v2", "backup-v2-reread", "restore-v1", "list-v2", "check"]
SHORT = {"backup-v1": "backup v1", "backup-v2": "backup v2 (incr.)",
         "backup-v2-reread": "v2 re-read", "restore-v1": "restore v1",
         "list-v2": "list v2", "check": "check (all data)"}
PEER_ORDER = ["tarzstd", "tarzstd19", "tarlz4", "restic", "rustic", "borg", "casync", "zpaq"]
LABEL = {"tarzstd": "tar + zstd -3 -T2", "tarzstd19": "tar + zstd -19 -T2", "tarlz4": "tar + lz4 -1", "restic": "restic",
         "rustic": "rustic", "borg": "borg", "casync": "casync", "zpaq": "zpaq -m1"}
IMAGE_CHANGED = 6291456  # bytes mutate.py image overwrites
MIB_MB = 1048576 / 1e6


def is_ptar(tool):
    return tool == "ptar" or tool.startswith("ptar-")


def label(tool):
    return LABEL.get(tool, tool)


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def fmt(x, nd=2):
    return "-" if x is None else ("%." + str(nd) + "f") % x


def mb(x):
    return "-" if x is None else "%.1f" % (x / 1e6)


def ok(r):
    return r is not None and r.get("exit") == "0"


def load(paths):
    data = OrderedDict()
    meta = []
    for p in paths:
        with open(p, newline="") as fh:
            for r in csv.DictReader(fh):
                data.setdefault(r["dataset"], OrderedDict()).setdefault(r["tool"], {})[r["scenario"]] = r
        if os.path.exists(p + ".meta"):
            with open(p + ".meta") as fh:
                meta += [l.rstrip("\n") for l in fh if l.strip()]
    return data, meta


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for l in fh:
                if l.startswith("model name"):
                    cpu = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "nproc %d, %s, kernel %s (where report.py ran, %s; no .meta file)" % (
        os.cpu_count() or 0, cpu, platform.release(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def order_tools(tools):
    ptars = [t for t in tools if is_ptar(t)]
    peers = [t for t in PEER_ORDER if t in tools] + [t for t in tools if not is_ptar(t) and t not in PEER_ORDER]
    return ptars, peers


def wall(sc, name):
    r = sc.get(name)
    return num(r["wall_s"]) if ok(r) else None


def added(sc):
    b1, b2 = sc.get("backup-v1"), sc.get("backup-v2")
    if not (ok(b1) and ok(b2)):
        return None
    return num(b2["repo_bytes"]) - num(b1["repo_bytes"])


def rss(sc, *names):
    vals = [num(sc[n]["max_rss_mib"]) for n in names if ok(sc.get(n))]
    return max(vals) if vals else None


def dataset_tables(ds, tools, tally):
    ptars, peers = order_tools(list(tools))
    every = ptars + peers
    v1 = v2 = None
    for sc in tools.values():
        if "backup-v1" in sc:
            v1 = num(sc["backup-v1"]["input_bytes"])
        if "backup-v2" in sc:
            v2 = num(sc["backup-v2"]["input_bytes"])
    print("### dataset `%s` (v1 %s MB, v2 %s MB)\n" % (ds, mb(v1), mb(v2)))

    print("Wall seconds (MB/s in brackets), one warm run each; FAIL = non-zero exit.\n")
    print("| tool | " + " | ".join(SHORT[s] for s in SCEN) + " |")
    print("|---" * (len(SCEN) + 1) + "|")
    for t in every:
        sc = tools[t]
        cells = []
        for s in SCEN:
            r = sc.get(s)
            if not r:
                cells.append("n/a")
                continue
            c = fmt(num(r["wall_s"]))
            if r["mb_per_s"] and s != "list-v2":
                c += " (%.0f)" % num(r["mb_per_s"])
            if r["exit"] != "0":
                c += " FAIL"
            cells.append(c)
        print("| %s | %s |" % (label(t), " | ".join(cells)))
    print()

    print("Sizes in MB; peak RSS in MiB (b1 / b2 / re-read / restore / list / check). RSS counts the "
          "file pages a process maps, not only its heap (ptar maps the archive it reads).\n")
    print("| tool | repo after v1 | ratio v1 | v2 added | % of v2 | repo final | local cache | RSS MiB | CPU% b1 | restore |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in every:
        sc = tools[t]
        b1 = sc.get("backup-v1")
        r1 = num(b1["repo_bytes"]) if b1 else None
        add = added(sc)
        last = None
        for s in SCEN:
            if s in sc and s != "restore-v1":
                last = sc[s]
        final = num(last["repo_bytes"]) if last else None
        cache = num(last["cache_bytes"]) if last else None
        rsss = " / ".join(fmt(num(sc[s]["max_rss_mib"]), 0) if s in sc else "-" for s in SCEN)
        note = (sc.get("restore-v1") or {}).get("note", "").strip() or "-"
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label(t), mb(r1), fmt(r1 / v1 if r1 and v1 else None, 3), mb(add),
            fmt(100 * add / v2 if add is not None and v2 else None), mb(final), mb(cache), rsss,
            (b1 or {}).get("cpu_pct", "-"), note))
    print()

    for p in ptars:
        ratio_table(ds, p, tools[p], peers, tools)
        targets(ds, p, tools[p], tools, tally)


def ratio_table(ds, p, ps, peers, tools):
    if not peers:
        return
    print("Ratios %s / peer on `%s` (below 1: %s is better).\n" % (p, ds, p))
    cols = SCEN + ["size v1", "v2 added", "RSS b1", "RSS restore"]
    print("| peer | " + " | ".join(SHORT.get(c, c) for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for q in peers:
        qs = tools[q]
        cells = []
        for s in SCEN:
            a, b = wall(ps, s), wall(qs, s)
            cells.append(fmt(a / b) if a is not None and b else "-")
        a = num(ps["backup-v1"]["repo_bytes"]) if ok(ps.get("backup-v1")) else None
        b = num(qs["backup-v1"]["repo_bytes"]) if ok(qs.get("backup-v1")) else None
        cells.append(fmt(a / b) if a is not None and b else "-")
        a, b = added(ps), added(qs)
        cells.append(fmt(a / b) if a is not None and b else "-")
        for s in ("backup-v1", "restore-v1"):
            a, b = rss(ps, s), rss(qs, s)
            cells.append(fmt(a / b) if a is not None and b else "-")
        print("| %s | %s |" % (label(q), " | ".join(cells)))
    print()


def verdict(value, limit):
    return "**PASS**" if value <= limit else "**FAIL**"


def targets(ds, p, ps, tools, tally):
    print("Targets for %s on `%s`.\n" % (p, ds))
    print("| target | %s | reference | ratio | limit | result |" % p)
    print("|---|---|---|---|---|---|")

    def row(name, mine, ref, limit, unit, why_na=None, absolute=False, extra_fail=None):
        if why_na:
            res, ratio = "n/a (%s)" % why_na, "-"
        elif absolute:
            ratio = "-"
            res = verdict(mine, limit)
        else:
            ratio = fmt(mine / ref)
            res = verdict(mine / ref, limit)
        if extra_fail and not why_na:
            res = "**FAIL** (%s)" % extra_fail
        show = lambda v: "-" if v is None else (mb(v) + " MB" if unit == "B" else fmt(v) + " " + unit)
        print("| %s | %s | %s | %s | %s | %s |" % (
            name, show(mine), "-" if absolute else show(ref),
            ratio, ("≤ %g %s" % (limit, unit)) if absolute else ("≤ %g×" % limit), res))
        tally.append((ds, p, name, res))

    def rel(name, scen, peer, peer_scen, limit, metric="wall", extra_fail=None):
        if peer not in tools:
            return row(name, None, None, limit, "s", why_na="%s not run" % peer)
        qs = tools[peer]
        if metric == "wall":
            mine, ref, unit = wall(ps, scen), wall(qs, peer_scen), "s"
        else:
            mine = num(ps[scen]["repo_bytes"]) if ok(ps.get(scen)) else None
            ref = num(qs[peer_scen]["repo_bytes"]) if ok(qs.get(peer_scen)) else None
            unit = "B"
        if mine is None:
            return row(name, None, ref, limit, unit, why_na="ptar step missing or failed")
        if ref is None:
            return row(name, mine, None, limit, unit, why_na="%s step missing or failed" % peer)
        if ref == 0:
            return row(name, mine, ref, limit, unit, why_na="%s took 0.00 s: too short to compare" % peer)
        return row(name, mine, ref, limit, unit, extra_fail=extra_fail)

    rel("create v1 wall ≤ 0.7× tar+zstd", "backup-v1", "tarzstd", "backup-v1", 0.7)
    rel("size after v1 ≤ 1.0× tar+zstd", "backup-v1", "tarzstd", "backup-v1", 1.0, metric="size")
    rel("append v2 wall ≤ 0.25× restic backup-v2", "backup-v2", "restic", "backup-v2", 0.25)
    if ds != "image" and "zpaq" in tools:
        mine, ref = added(ps), added(tools["zpaq"])
        name = "v2 growth ≤ 1.0× zpaq's"
        if mine is None or ref is None:
            row(name, None, None, 1.0, "B", why_na="a backup step missing or failed")
        else:
            row(name, mine, ref, 1.0, "B")
    note = (ps.get("restore-v1") or {}).get("note", "")
    bad = "restore differs from v1" if "DIFF" in note else None
    rel("extract wall ≤ 1.0× tar+zstd restore", "restore-v1", "tarzstd", "restore-v1", 1.0, extra_fail=bad)
    if "zpaq" in tools:
        rel("list ≤ 1.0× zpaq list", "list-v2", "zpaq", "list-v2", 1.0)
    rel("verify --full ≤ 0.5× restic check", "check", "restic", "check", 0.5)
    if ds == "image":
        a = added(ps)
        if a is None:
            row("image v2 growth ≤ 1.5× 6.3 MB changed", None, IMAGE_CHANGED, 1.5, "B", why_na="ptar step missing or failed")
        else:
            row("image v2 growth ≤ 1.5× 6.3 MB changed", a, IMAGE_CHANGED, 1.5, "B")
    if p == "ptar-best" and "tarzstd19" in tools:
        # No limit: the issue asks for --best to be shown beside tar+zstd -19.
        qs = tools["tarzstd19"]
        for what, mine, ref, unit in (
                ("--best size vs tar+zstd -19",
                 num(ps["backup-v1"]["repo_bytes"]) if ok(ps.get("backup-v1")) else None,
                 num(qs["backup-v1"]["repo_bytes"]) if ok(qs.get("backup-v1")) else None, "B"),
                ("--best create wall vs tar+zstd -19", wall(ps, "backup-v1"), wall(qs, "backup-v1"), "s")):
            if mine is None or not ref:
                continue
            show = (lambda v: mb(v) + " MB") if unit == "B" else (lambda v: fmt(v) + " s")
            print("| %s | %s | %s | %s | – | (reported) |" % (what, show(mine), show(ref), fmt(mine / ref)))
    for name, scens, limit in (("create RSS ≤ 100 MB", ("backup-v1", "backup-v2", "backup-v2-reread"), 100),
                               ("extract RSS ≤ 64 MB", ("restore-v1",), 64)):
        m = rss(ps, *scens)
        if m is None:
            row(name, None, None, limit, "MB", why_na="ptar step missing or failed", absolute=True)
        else:
            row(name, m * MIB_MB, None, limit, "MB", absolute=True)
    print()


def memory_section(mem, tally):
    print("### memory (generated input, MEMORY=1)\n")
    print("| tool | input | files | create wall s | create RSS MiB | extract wall s | extract RSS MiB | archive MB | restore |")
    print("|---|---|---|---|---|---|---|---|---|")
    per_tool = OrderedDict()
    for ds in sorted(mem, key=lambda d: num(d[4:-1]) or 0):
        for t, sc in mem[ds].items():
            c, x = sc.get("backup-v1"), sc.get("restore-v1")
            per_tool.setdefault(t, []).append((ds, sc))
            print("| %s | %s MB | %s | %s | %s | %s | %s | %s | %s |" % (
                t, mb(num((c or x)["input_bytes"])), ((c or {}).get("note", "").strip() or "-").replace("files=", ""),
                fmt(num(c["wall_s"])) + ("" if ok(c) else " FAIL") if c else "-",
                fmt(num(c["max_rss_mib"]), 0) if c else "-",
                fmt(num(x["wall_s"])) + ("" if ok(x) else " FAIL") if x else "-",
                fmt(num(x["max_rss_mib"]), 0) if x else "-",
                mb(num(c["repo_bytes"])) if c else "-",
                " ".join(w for w in (x or {}).get("note", "").split() if w.startswith(("restore", "FAILED"))) or "-"))
    print()
    for t, lst in per_tool.items():
        if len(lst) >= 2:
            (d0, s0), (d1, s1) = lst[0], lst[-1]
            parts = []
            for s, what in (("backup-v1", "create"), ("restore-v1", "extract")):
                a, b = rss(s0, s), rss(s1, s)
                if a and b is not None:
                    parts.append("%s %.0f → %.0f MiB (%.2f×)" % (what, a, b, b / a))
            print("%s peak RSS, %s → %s: %s.\n" % (t, d0, d1, "; ".join(parts) or "n/a"))
    print("| target | tool | input | RSS | limit | result |")
    print("|---|---|---|---|---|---|")
    for t, lst in per_tool.items():
        for ds, sc in lst:
            for name, s, limit in (("create RSS ≤ 100 MB", "backup-v1", 100), ("extract RSS ≤ 64 MB", "restore-v1", 64)):
                m = rss(sc, s)
                res = "n/a (step missing or failed)" if m is None else verdict(m * MIB_MB, limit)
                print("| %s | %s | %s | %s | ≤ %d MB | %s |" % (
                    name, t, ds, "-" if m is None else "%.1f MB" % (m * MIB_MB), limit, res))
                tally.append((ds, t, name, res))
    print()


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    data, meta = load(argv[1:])
    kv = OrderedDict()
    skipped = []
    for l in meta:
        k, _, v = l.partition(": ")
        if k in ("skipped", "warning"):
            if (k, v) not in skipped:
                skipped.append((k, v))
        else:
            kv[k] = v  # the last run's value
    print("## ptar against peer tools (bench/run.sh)\n")
    print("- machine: %s" % kv.get("machine", machine_line()))
    for k in ("date", "scratch fs", "ptar"):
        if k in kv:
            print("- %s: %s" % (k, kv[k]))
    vers = ["%s" % v for k, v in kv.items() if k.startswith("version ")]
    if vers:
        print("- versions: " + "; ".join(vers))
    for k, v in skipped:
        print("- %s: %s" % (k, v))
    print("- one warm run per step on a possibly shared machine: compare tools within this run, as ratios\n")
    tally = []
    mem = OrderedDict((d, t) for d, t in data.items() if d.startswith("mem-"))
    for ds, tools in data.items():
        if not ds.startswith("mem-"):
            dataset_tables(ds, tools, tally)
    if mem:
        memory_section(mem, tally)
    if tally:
        n = lambda w: sum(1 for r in tally if r[3].startswith(w))
        print("Targets: %d pass, %d fail, %d n/a." % (n("**PASS"), n("**FAIL"), n("n/a")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
