#!/usr/bin/env python3
"""Result-retention flood against a real cfgserve on loopback (issue 13 item 3); stdlib only.

Finished jobs are kept for GET /jobs/{id} and OpenAI result URLs. Kept without a byte bound,
a flood of cheap generations with large results grows the process by the results of every
kept job (256 by default); --max-finished-mb bounds that. This script proves the bound holds
in the process's memory, not only in the server's own accounting:

  1. starts its own server (127.0.0.1, ephemeral port, the shipped default model) with a
     small --max-finished-mb;
  2. warms it up (--warm-jobs jobs of the flood's shape, so the allocator's arenas exist
     and the retained set is full) and takes the warm baseline: RSS from /metrics
     (process_resident_memory_bytes);
  3. floods it: --jobs asynchronous jobs (POST /jobs, 1 step, --size², --images images
     each) from --clients threads, 429s retried, while poller threads read GET /jobs/{id}
     and GET /jobs/{id}/image of recent and old ids;
  4. waits for the queue to empty and checks: the server is alive, no 5xx; the retained
     bytes (/metrics cfgserve_finished_jobs_retained_bytes) within --max-finished-mb; RSS
     within --rss-slack-mb (plus --rss-pct of the baseline) of the warm baseline; the first
     flooded ids answer 410 naming --max-finished-mb; SIGTERM exits 0.

  flood.py [--jobs N] [--max-finished-mb M] [--bin DIR]

--legacy runs the same flood against a server built before the bound (no --max-finished-mb
flag, RSS from /proc instead of /metrics, no 410 answers) and judges only what such a server
can show: there the RSS check fails.
Everything is bounded: job counts, threads and every wait have limits; nothing outlives it.
"""
import argparse, http.client, json, os, random, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storm import ROOT, Server, log  # noqa: E402  (the server harness the storms share)

MIB = 1 << 20


def request(srv, method, path, body=None, timeout=60):
    """(status, body bytes); status 0 when the connection failed."""
    try:
        c = srv.conn(timeout)
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"} if body else {}
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    except OSError:
        return 0, b""


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.codes = {}
        self.ids = []

    def count(self, what, status):
        with self.lock:
            k = "%s %d" % (what, status)
            self.codes[k] = self.codes.get(k, 0) + 1

    def server_errors(self):
        codes = ((int(k.rsplit(" ", 1)[1]), v) for k, v in self.codes.items())
        return sum(v for st, v in codes if st == 0 or st >= 500)


def submitter(srv, a, tally, seq, stop_at):
    while time.time() < stop_at:
        with tally.lock:
            if seq[0] >= a.jobs:
                return
            i = seq[0]
            seq[0] += 1
        body = json.dumps({"prompt": "a red circle %d" % i, "steps": 1, "width": a.size,
                           "height": a.size, "num_images": a.images, "seed": i})
        while time.time() < stop_at:
            st, data = request(srv, "POST", "/jobs", body)
            tally.count("POST /jobs", st)
            if st == 202:
                with tally.lock:
                    tally.ids.append(json.loads(data)["id"])
                break
            if st != 429:
                break
            time.sleep(0.1)  # the queue is full: keep it full, leave the CPU to the server


def poller(srv, tally, stop):
    rnd = random.Random(7)
    while not stop.is_set():
        with tally.lock:
            ids = tally.ids[-32:] + tally.ids[:8]
        if not ids:
            time.sleep(0.01)
            continue
        jid = rnd.choice(ids)
        st, data = request(srv, "GET", "/jobs/%s" % jid)
        tally.count("GET /jobs/{id}", st)
        if st == 200 and json.loads(data).get("state") == "done":
            st, _ = request(srv, "GET", "/jobs/%s/image" % jid)
            tally.count("GET /jobs/{id}/image", st)
        stop.wait(0.02)


def flood(srv, a, n_jobs, tally):
    """Runs n_jobs through the server with pollers alongside; returns seconds taken."""
    seq = [0]
    a_n = argparse.Namespace(**vars(a))
    a_n.jobs = n_jobs
    stop = threading.Event()
    t0 = time.time()
    stop_at = t0 + a.max_seconds
    subs = [threading.Thread(target=submitter, args=(srv, a_n, tally, seq, stop_at))
            for _ in range(a.clients)]
    polls = [threading.Thread(target=poller, args=(srv, tally, stop)) for _ in range(2)]
    for t in subs + polls:
        t.start()
    for t in subs:
        t.join()
    idle_by = time.time() + 120
    while time.time() < idle_by and (srv.metric("cfgserve_queue_depth") or
                                      srv.metric("cfgserve_jobs_running")):
        time.sleep(0.1)
    stop.set()
    for t in polls:
        t.join()
    return time.time() - t0


def fmt(v, unit=1):
    return "n/a" if v is None else "%.2f" % (v / unit) if unit != 1 else "%d" % v


def rss(srv, legacy):
    if legacy:
        return srv.rss_kib() * 1024
    return srv.metric("process_resident_memory_bytes") or 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("CFGSERVE_BIN", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--jobs", type=int, default=400, help="jobs in the flood (default 400)")
    ap.add_argument("--warm-jobs", type=int, default=80,
                    help="jobs of the warm-up, before the baseline (default 80: more than the "
                         "bound keeps, so the retained set is full)")
    ap.add_argument("--size", type=int, default=64, help="image side (default 64)")
    ap.add_argument("--images", type=int, default=8, help="images per job (default 8)")
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--max-finished-mb", type=int, default=4)
    ap.add_argument("--rss-slack-mb", type=float, default=4.0,
                    help="RSS may exceed the warm baseline by this (default 4 MiB)...")
    ap.add_argument("--rss-pct", type=float, default=5.0, help="... plus this %% of it (default 5)")
    ap.add_argument("--no-rss", action="store_true",
                    help="report RSS without bounding it (sanitizer builds: ASan's quarantine grows it)")
    ap.add_argument("--max-seconds", type=float, default=300, help="time limit of each flood")
    ap.add_argument("--legacy", action="store_true",
                    help="a server without --max-finished-mb (see above)")
    a = ap.parse_args()

    extra = ["--queue-size", "64", "--max-batch", "8", "--max-width", str(a.size),
             "--max-height", str(a.size), "--finished-ttl", "3600"]
    if not a.legacy:
        extra += ["--max-finished-mb", str(a.max_finished_mb)]
    srv = Server(os.path.join(a.bin, "cfgserve"), a.model, extra)
    ok = True
    try:
        warm = Tally()
        t_warm = flood(srv, a, a.warm_jobs, warm)
        time.sleep(1)
        base = rss(srv, a.legacy)
        kept0 = srv.metric("cfgserve_finished_jobs_retained_bytes")
        log("warm-up: %d jobs in %.1f s; baseline RSS %.1f MiB, retained %s MiB, malloc free %s MiB"
            % (a.warm_jobs, t_warm, base / MIB, fmt(kept0, MIB),
               fmt(srv.metric("cfgserve_malloc_free_bytes"), MIB)))

        tally = Tally()
        took = flood(srv, a, a.jobs, tally)
        time.sleep(1)
        after = rss(srv, a.legacy)
        kept = srv.metric("cfgserve_finished_jobs_retained_bytes")
        n_kept = srv.metric("cfgserve_finished_jobs_retained")
        dropped = srv.metric('cfgserve_finished_jobs_dropped_total{reason="bytes"}')
        heap = {k: srv.metric("cfgserve_malloc_%s_bytes" % k) for k in ("in_use", "free", "mmapped")}
        log("flood: %d of %d jobs admitted in %.1f s (%d s limit), %d x %dx%d image(s) of 1 step "
            "each; responses %s" % (len(tally.ids), a.jobs, took, a.max_seconds, a.images, a.size,
                                    a.size, json.dumps(tally.codes, sort_keys=True)))
        lim = base * (1 + a.rss_pct / 100.0) + a.rss_slack_mb * MIB
        log("after: RSS %.1f MiB (%+.1f MiB, limit %+.1f MiB); retained %s jobs, %s MiB (limit "
            "%s MiB); dropped for bytes %s; malloc in use %s MiB, free %s MiB, mmapped %s MiB"
            % (after / MIB, (after - base) / MIB, (lim - base) / MIB, fmt(n_kept), fmt(kept, MIB),
               "none" if a.legacy else a.max_finished_mb, fmt(dropped), fmt(heap["in_use"], MIB),
               fmt(heap["free"], MIB), fmt(heap["mmapped"], MIB)))
        checks = [
            ("server alive", srv.alive()),
            ("no 5xx or failed connections", tally.server_errors() == 0 and warm.server_errors() == 0),
            ("every flood job admitted", len(tally.ids) == a.jobs),
            ("RSS within the limit of the warm baseline", a.no_rss or 0 < after <= lim),
        ]
        if not a.legacy:  # figures and answers only a server with the bound has
            checks.append(("retained bytes within --max-finished-mb",
                           kept is not None and kept <= a.max_finished_mb * MIB))
            st, body = request(srv, "GET", "/jobs/%s" % tally.ids[0]) if tally.ids else (0, b"")
            checks.append(("the first flood job answers 410 naming --max-finished-mb (%d)" % st,
                           st == 410 and b"--max-finished-mb" in body))
        for name, good in checks:
            log("  %s: %s" % (name, "ok" if good else "FAIL"))
            ok &= good
    finally:
        rc = srv.stop()
        log("server exit status %d%s" % (rc, "" if rc == 0 else "  FAIL"))
        ok &= rc == 0
    log("flood: %s" % ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
