#!/usr/bin/env python3
"""Storms and soak against a real cfgserve on loopback (issue 13 item 4); stdlib only.

Starts its own server (127.0.0.1, ephemeral port, the shipped default model unless
--model), runs the chosen phases, prints one line of figures per phase, stops the server
with SIGTERM (exit status 0 required) and exits non-zero when any bound is broken.
Everything is bounded: counts, concurrency and times come from the options; nothing
outlives the script.

  storm.py [--short] [--phases sse,idle,soak] [--sse N] [--idle N] [--soak-seconds S]

Phases
  sse   N SSE generations (POST /generate, "stream": true), C at a time, each cut by
        closing the socket after its first progress event. Bound: after every wave the
        cancelled jobs leave the batch within one step: /metrics cfgserve_jobs_running is
        back to 0 after at most 2 more UNet steps (cfgserve_unet_batches_total: the step
        in flight at the cut and one already started); all N count as cancelled.
  idle  N connections held open (half idle, half slow-header clients sending one header
        byte per second) while a normal request is made: it must complete (200) in time.
  soak  wrk on POST /generate at 4x the queue's capacity (connections = 4 x
        (--queue-size + running)) for S seconds: 429s expected, no 5xx, no socket errors
        other than the 429s' closes, the server alive; p50/p99 latency reported.
  RSS (VmRSS of the server) after warm-up (generations, a 64-stream cut storm, wrk until
  the finished-job set is full: the baseline), after each phase and at the end must stay within 5 % of it.

--short: the ctest version (50 SSE streams, 200 connections, 60 s soak).
Manual defaults: 1000 SSE streams, 2000 connections, 30 min soak.
"""
import argparse, http.client, json, os, re, signal, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEEP = 256  # --max-finished of the server under test (the default)


def log(*a):
    print(*a, flush=True)


class Server:
    def __init__(self, binary, model, extra):
        self.dir = tempfile.mkdtemp(prefix="cs_storm_")
        self.logf = os.path.join(self.dir, "server.log")
        cmd = [binary, "--config", "none", "--host", "127.0.0.1", "--port", "0", "--model", model,
               "--log-file", self.logf] + extra
        self.p = subprocess.Popen(cmd, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline and self.p.poll() is None:
            if self.port is None and os.path.exists(self.logf):
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(self.logf).read())
                if m:
                    self.port = int(m.group(1))
            if self.port and self.get("/ready")[0] == 200:
                return
            time.sleep(0.1)
        raise SystemExit("server did not become ready; log in %s" % self.dir)

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path):
        try:
            c = self.conn(10)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        except OSError:
            return 0, b""

    def metric(self, name):
        st, body = self.get("/metrics")
        for line in body.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return float(parts[1])
        return None

    def memory_note(self):
        """The retained results and malloc figures of /metrics, to tell growth that the
        retention bounds allow (the finished-job set filling up) from fragmentation."""
        def mib(name):
            v = self.metric(name)
            return "n/a" if v is None else "%.1f" % (v / 1048576.0)
        kept = self.metric("cfgserve_finished_jobs_retained")
        return "retained %s jobs %s MiB, malloc in use %s MiB free %s MiB" % (
            "n/a" if kept is None else "%d" % kept, mib("cfgserve_finished_jobs_retained_bytes"),
            mib("cfgserve_malloc_in_use_bytes"), mib("cfgserve_malloc_free_bytes"))

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def status_counts(self):
        """HTTP statuses of every request so far, from the access log lines."""
        counts = {}
        with open(self.logf, errors="replace") as f:
            for m in re.finditer(r"req \d+ \S+ \S+ (\d{3}) ", f.read()):
                k = int(m.group(1))
                counts[k] = counts.get(k, 0) + 1
        return counts

    def latencies(self, status, since=0):
        """Durations (ms) of the POST /generate requests answered with `status`, from the
        access log lines after byte offset `since`."""
        with open(self.logf, errors="replace") as f:
            f.seek(since)
            text = f.read()
        return sorted(float(m.group(1)) for m in
                      re.finditer(r"req \d+ POST /generate %d ([\d.]+)ms" % status, text))

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return -9


def generate(srv, body, timeout=300):
    c = srv.conn(timeout)
    c.request("POST", "/generate", body=json.dumps(body),
              headers={"Content-Type": "application/json", "Accept": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


# ---- SSE cut storm ------------------------------------------------------------------
def one_cut_stream(srv, steps, out, i):
    """Starts a streamed generation, waits for its first progress event, then cuts."""
    body = json.dumps({"prompt": "a red circle %d" % i, "steps": steps, "stream": True, "seed": i})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
    try:
        s.sendall(("POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        buf = b""
        t_first = None
        while True:
            d = s.recv(65536)
            if not d:
                out[i] = ("closed", None)
                return
            buf += d
            if buf.startswith(b"HTTP/1.1 429"):
                out[i] = ("429", None)
                return
            if b"event: progress" in buf:
                t_first = time.time()
                break
            if b"event: done" in buf or b"event: error" in buf:
                out[i] = ("finished", None)
                return
        out[i] = ("cut", t_first)
    except OSError as e:
        out[i] = ("error %s" % e, None)
    finally:
        s.close()


def phase_sse(srv, n, conc, steps, step_time, quiet=False):
    results = [None] * n
    cancelled0 = srv.metric('cfgserve_jobs_finished_total{outcome="cancelled"}') or 0
    worst_free, worst_steps = 0.0, 0
    waves = 0
    for start in range(0, n, conc):
        idx = range(start, min(n, start + conc))
        ts = [threading.Thread(target=one_cut_stream, args=(srv, steps, results, i)) for i in idx]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_cut = time.time()
        b0 = srv.metric("cfgserve_unet_batches_total") or 0
        while srv.metric("cfgserve_jobs_running") != 0.0 or srv.metric("cfgserve_queue_depth") != 0.0:
            if time.time() - t_cut > 60:
                break
            time.sleep(0.02)
        worst_free = max(worst_free, time.time() - t_cut)
        # UNet steps run after the last cut until every row was free: the step in flight,
        # and at most one more that started before the cancellation reached the batcher.
        worst_steps = max(worst_steps, int((srv.metric("cfgserve_unet_batches_total") or 0) - b0))
        waves += 1
    kinds = {}
    for r in results:
        k = r[0] if r else "none"
        kinds[k] = kinds.get(k, 0) + 1
    cancelled = (srv.metric('cfgserve_jobs_finished_total{outcome="cancelled"}') or 0) - cancelled0
    ok = kinds.get("cut", 0) == n and cancelled == n and worst_steps <= 3
    if quiet:
        return ok
    log("sse: %d streams in %d waves of %d: %s; cancelled %d; rows freed after at most %d UNet "
        "step(s) after the last cut (bound 3: the step in flight at the cut, the step whose progress event first fails to reach the closed socket, which is when the server learns of the cut, and one already started), at most "
        "%.2f s%s" % (n, waves, conc, kinds, cancelled, worst_steps, worst_free,
                      "" if ok else "  FAIL"))
    return ok


# ---- idle and slow-header connections ----------------------------------------------
def phase_idle(srv, n, hold):
    socks, slow = [], []
    refused = 0
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.setblocking(False)
            if i % 2:
                s.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                slow.append(s)
            socks.append(s)
        except OSError:
            refused += 1
    stop = threading.Event()

    def dribble():
        while not stop.is_set():
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            stop.wait(1.0)

    t = threading.Thread(target=dribble)
    t.start()
    time.sleep(1.0)
    t0 = time.time()
    status = 0
    deadline = t0 + hold
    while time.time() < deadline:
        try:
            status = generate(srv, {"prompt": "a blue square", "steps": 4, "seed": 1}, timeout=30)
            if status == 200:
                break
        except OSError:
            status = -1
        time.sleep(0.5)
    took = time.time() - t0
    alive_socks = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                continue
        except BlockingIOError:
            pass
        except OSError:
            continue
        alive_socks += 1
    stop.set()
    t.join()
    for s in socks:
        s.close()
    ok = status == 200
    log("idle: %d connections opened (%d refused at connect; %d idle, %d slow-header), still open "
        "when the normal request ended: %d; normal request: status %s after %.2f s%s"
        % (n, refused, len(socks) - len(slow), len(slow), alive_socks, status, took,
           "" if ok else "  FAIL"))
    return ok


# ---- soak with wrk ----------------------------------------------------------------
def write_post_lua(srv, steps):
    lua = os.path.join(srv.dir, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.headers["Accept"] = "application/json"\n'
                'wrk.body = \'{"prompt": "a green triangle", "steps": %d}\'\n'
                'statuses = {}\n'
                'response = function(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end\n'
                'done = function(summary, latency, requests)\n'
                '  io.write(string.format("LAT p50 %%d p99 %%d max %%d\\n", latency:percentile(50), latency:percentile(99), latency.max))\n'
                'end\n' % steps)
    return lua


def phase_soak(srv, seconds, connections, steps):
    lua = write_post_lua(srv, steps)
    # wrk's "response" runs per thread; count statuses from the summary instead.
    log_at = os.path.getsize(srv.logf)
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", "%ds" % seconds, "--timeout", "120s",
           "--latency", "-s", lua, "http://127.0.0.1:%d/generate" % srv.port]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300).stdout
    m = re.search(r"(\d+) requests in", out)
    total = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = tuple(int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    lat = re.search(r"LAT p50 (\d+) p99 (\d+) max (\d+)", out)
    p50, p99, mx = (int(x) / 1000 for x in lat.groups()) if lat else (0, 0, 0)
    completed = srv.metric('cfgserve_jobs_finished_total{outcome="completed"}') or 0
    failed = srv.metric('cfgserve_jobs_finished_total{outcome="failed"}') or 0
    codes = srv.status_counts()
    s5 = sum(v for k, v in codes.items() if k >= 500)
    s429 = codes.get(429, 0)
    def pct(v, q):
        return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0
    ok_lat = srv.latencies(200, log_at)
    ok = srv.alive() and failed == 0 and s5 == 0 and sock[3] == 0 and total > 0 and bool(ok_lat)
    log("soak: %d s, %d connections: %d responses (%d non-2xx), server 429s %d, 5xx %d, jobs "
        "completed %d failed %d; socket errors connect/read/write/timeout %s; latency (all "
        "responses, wrk) p50 %.0f ms p99 %.0f ms max %.0f ms; completed generations (%d, server "
        "log) p50 %.0f ms p99 %.0f ms%s"
        % (seconds, connections, total, non2xx, s429, s5, completed, failed, "/".join(map(str, sock)),
           p50, p99, mx, len(ok_lat), pct(ok_lat, 0.5), pct(ok_lat, 0.99), "" if ok else "  FAIL"))
    if not ok:
        log(out)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--phases", default="sse,idle,soak")
    ap.add_argument("--bin", default=os.environ.get("CFGSERVE_BIN", os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--sse", type=int)
    ap.add_argument("--sse-concurrency", type=int, default=16)
    ap.add_argument("--idle", type=int)
    ap.add_argument("--soak-seconds", type=int)
    ap.add_argument("--queue-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rss-pct", type=float, default=5.0,
                    help="RSS bound after each phase, %% above the warm baseline (default 5)")
    ap.add_argument("--no-rss", action="store_true",
                    help="report RSS without bounding it (sanitizer builds: ASan's quarantine grows it)")
    a = ap.parse_args()
    n_sse = a.sse if a.sse is not None else (50 if a.short else 1000)
    n_idle = a.idle if a.idle is not None else (200 if a.short else 2000)
    soak_s = a.soak_seconds if a.soak_seconds is not None else (60 if a.short else 1800)
    # Connections must exceed the storm's: the server keeps serving beyond the idle crowd
    # only when its limit and idle timeout allow; the figures say what happened.
    srv = Server(os.path.join(a.bin, "cfgserve"), a.model,
                 ["--queue-size", str(a.queue_size), "--idle-timeout", "10",
                  "--workers", "1", "--max-finished", str(KEEP)])
    ok = True
    try:
        # Warm-up: a few generations, then the RSS baseline; the step time for the bound.
        t0 = time.time()
        for i in range(3):
            generate(srv, {"prompt": "warm up %d" % i, "steps": a.steps, "seed": i})
        step_time = (time.time() - t0) / (3 * a.steps)
        # The finished-job table (--max-finished records) and the allocator's per-thread
        # arenas fill during the first minutes of traffic: warm them with a small cut
        # storm and a burst of 429s before taking the baseline.
        phase_sse(srv, 64, a.sse_concurrency, max(a.steps, 20), step_time, quiet=True)
        # ... and a 20 s burst at full concurrency (every connection slot, queue and batch
        # row in use once), as a server meets it within its first minutes in service.
        burst = ["wrk", "-t", "2", "-c", str(4 * (a.queue_size + 8)), "-s",
                 write_post_lua(srv, a.steps), "http://127.0.0.1:%d/generate" % srv.port]
        subprocess.run(burst + ["-d", "20s"], capture_output=True, timeout=300)
        # ... then the same requests until KEEP of them have completed: the finished-job
        # set is then full of records of the soak's shape (~6.5 KB a job, 1.6 MiB in all;
        # the cut streams' records are smaller), so its filling is in the baseline and not
        # read as growth by the soak (bounded by --max-finished, not a leak).
        done0 = srv.metric('cfgserve_jobs_finished_total{outcome="completed"}') or 0
        deadline = time.time() + 300
        while ((srv.metric('cfgserve_jobs_finished_total{outcome="completed"}') or 0) - done0 < KEEP
               and time.time() < deadline):
            subprocess.run(burst + ["-d", "5s"], capture_output=True, timeout=300)
        time.sleep(2)
        for i in range(3):
            generate(srv, {"prompt": "warm up %d" % i, "steps": a.steps, "seed": i})
        base = srv.rss_kib()
        log("baseline: RSS %.1f MiB after warm-up (%s); %.1f ms per step alone"
            % (base / 1024, srv.memory_note(), step_time * 1e3))

        def rss_check(label):
            r = srv.rss_kib()
            lim = base * (1 + a.rss_pct / 100.0)
            good = r <= lim or a.no_rss
            log("rss after %s: %.1f MiB (%+.1f %% of baseline; %s)%s"
                % (label, r / 1024, 100.0 * (r - base) / base, srv.memory_note(),
                   "" if good else "  FAIL (> %g %%)" % a.rss_pct))
            return good

        for ph in a.phases.split(","):
            if ph == "sse":
                ok &= phase_sse(srv, n_sse, a.sse_concurrency, max(a.steps, 20), step_time)
            elif ph == "idle":
                ok &= phase_idle(srv, n_idle, 60)
            elif ph == "soak":
                ok &= phase_soak(srv, soak_s, 4 * (a.queue_size + 8), a.steps)
            else:
                raise SystemExit("unknown phase %s" % ph)
            time.sleep(2)
            ok &= srv.alive()
            ok &= rss_check(ph)
    finally:
        rc = srv.stop()
    log("server exit status %d%s" % (rc, "" if rc == 0 else "  FAIL"))
    ok &= rc == 0
    log("storm: %s" % ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
