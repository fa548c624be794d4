#!/usr/bin/env python3
"""The Python half of scripts/bench.sh: every step that is easier in Python than in
shell, as subcommands, so bench.sh holds no inline Python.

  summary DIR                       Markdown summary of a result directory: the median
                                    of every point over its repetitions, server CPU per
                                    message, ratios against the tokio baseline, the rate
                                    ladder and the highest rate under each p99 bound, the
                                    idle-connection figures, fan-out against the brokers,
                                    loadgen's and the servers' CPU per message with
                                    loadgen's send window on and off
  rows CSV                          number of data rows of a CSV (0 if it does not exist)
  new-row CSV BEFORE COLUMN...      checks that the CSV has exactly BEFORE + 1 rows (one
                                    run appended one row) and prints the named columns of
                                    that row; exits 1 naming the problem otherwise
  server-cpu OUT LABEL REP T0 T1 HZ RECEIVED WARMUP DURATION [W0 W1 C0 C1]
                                    appends a row of server CPU per message to OUT (and,
                                    given the server threads' run-queue wait W0/W1 and the
                                    wall clock C0/C1 in ns, its wait per second)
  search LADDER SEARCH CLIENTS      highest ladder rate under each p99 bound, to SEARCH
  scrape LOG SECONDS                scrapes the /metrics endpoint named in a server log
                                    once a second
  idle-clients ADDR COUNT READY     opens COUNT idle connections (Hello sent), touches
                                    READY, holds them 60 s
  idle-csv OUT COUNT RSS0 RSS1 T0 T1 HZ
                                    writes the idle-connection figures
  stat ADDR NAME                    one /stats counter of a running server (text mode)
  history-csv OUT MODE ROOMS BUDGET RSS0 RSS1 HELD
                                    appends the history-memory figures of one mode (on, off)
  div A B...                        A / B / ... (per-client rates for bench.sh)
  free-port                         a TCP port of 127.0.0.1 free at the moment
  wait-port ADDR SECONDS            waits until ADDR accepts connections; exits 1 if it
                                    does not within SECONDS
"""

import csv
import os
import re
import socket
import statistics
import struct
import sys
import time
import urllib.request
from pathlib import Path


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def median(values):
    values = [float(v) for v in values if v not in ("", None)]
    return statistics.median(values) if values else float("nan")


def fmt_ms(us):
    return "-" if us != us else f"{us / 1000:.3f}"


def paired_table(points, a_prefix, b_prefix, a_name, b_name, title):
    """Ratios of the points measured in two variants, labels A_PREFIX+name and
    B_PREFIX+name, one row per name present in both."""
    names = [label[len(a_prefix):] for label in points if label.startswith(a_prefix)]
    names = [name for name in names if b_prefix + name in points]
    if not names:
        return
    print(f"\n## {title}\n")
    print(f"| point | p50 | p99 | p99.9 | server CPU per message | lost ({a_name}, {b_name}) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        a, b = points[a_prefix + name], points[b_prefix + name]

        def ratio(key):
            return "-" if not b[key] or b[key] != b[key] else f"{a[key] / b[key]:.2f}x"

        print(f"| {name} | {ratio('p50')} | {ratio('p99')} | {ratio('p999')} "
              f"| {ratio('srv_cpu')} | {a['lost']}, {b['lost']} |")


def send_window(out):
    """The sendwindow point: loadgen's and the servers' CPU per message with loadgen's
    --send-window 0 and 1ms, each ratio taken within one rep (both ran minutes apart on
    the same machine), then the median over the reps."""
    targets = [t for t in ("server-echo", "tokio-line")
               if (out / f"sw0-{t}.csv").exists() and (out / f"sw1ms-{t}.csv").exists()]
    if not targets:
        return
    srv = {}
    if (out / "server_cpu.csv").exists():
        srv = {(r["label"], r["rep"]): float(r["server_cpu_us_per_msg"])
               for r in rows(out / "server_cpu.csv")}
    nan = float("nan")

    def cpu(r):
        return float(r["loadgen_cpu_us_per_msg"]) if r["loadgen_cpu_us_per_msg"] else nan

    def fmt(v, unit=""):
        return "-" if v != v else f"{v:.2f}{unit}"

    print("\n## loadgen's send window: 0 against 1ms (CPU in us per message; ratios within "
          "each rep, then the median)\n")
    print("| target | rep | loadgen 0 | loadgen 1ms | 1ms / 0 | server 0 | server 1ms "
          "| 1ms / 0 | p99 ms 0 | p99 ms 1ms | trustworthy 0, 1ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    per_rep_srv = {}
    for target in targets:
        off, on = rows(out / f"sw0-{target}.csv"), rows(out / f"sw1ms-{target}.csv")
        ratios = {"lg": [], "srv": []}
        cols = {k: [] for k in ("lg0", "lg1", "s0", "s1")}
        for i, (a, b) in enumerate(zip(off, on), start=1):
            s0 = srv.get((f"sw0-{target}", str(i)), nan)
            s1 = srv.get((f"sw1ms-{target}", str(i)), nan)
            per_rep_srv[(target, i)] = (s0, s1)
            lg0, lg1 = cpu(a), cpu(b)
            for k, v in (("lg0", lg0), ("lg1", lg1), ("s0", s0), ("s1", s1)):
                cols[k].append(v)
            ratios["lg"].append(lg1 / lg0 if lg0 == lg0 and lg0 else nan)
            ratios["srv"].append(s1 / s0 if s0 == s0 and s0 else nan)
            print(f"| {target} | {i} | {fmt(lg0)} | {fmt(lg1)} | {fmt(ratios['lg'][-1], 'x')} "
                  f"| {fmt(s0)} | {fmt(s1)} | {fmt(ratios['srv'][-1], 'x')} "
                  f"| {fmt_ms(float(a['p99_us']))} | {fmt_ms(float(b['p99_us']))} "
                  f"| {a.get('trustworthy') or '-'}, {b.get('trustworthy') or '-'} |")
        med = {k: median(v for v in vals if v == v) for k, vals in {**cols, **ratios}.items()}
        print(f"| {target} | median | {fmt(med['lg0'])} | {fmt(med['lg1'])} "
              f"| {fmt(med['lg'], 'x')} | {fmt(med['s0'])} | {fmt(med['s1'])} "
              f"| {fmt(med['srv'], 'x')} | | | |")
    if len(targets) == 2:
        ratios = {0: [], 1: []}
        for (target, i), (s0, s1) in per_rep_srv.items():
            if target != "server-echo" or ("tokio-line", i) not in per_rep_srv:
                continue
            t0, t1 = per_rep_srv[("tokio-line", i)]
            ratios[0].append(s0 / t0 if t0 else nan)
            ratios[1].append(s1 / t1 if t1 else nan)
        print(f"\nServer CPU per echo, our server / tokio echo (median of the per-rep "
              f"ratios): {fmt(median(v for v in ratios[0] if v == v), 'x')} with "
              f"--send-window 0, {fmt(median(v for v in ratios[1] if v == v), 'x')} with 1ms.")


def summary(out):
    out = Path(out)
    cpu = {}
    wait = {}
    if (out / "server_cpu.csv").exists():
        for r in rows(out / "server_cpu.csv"):
            cpu.setdefault(r["label"], []).append(r["server_cpu_us_per_msg"])
            if r.get("server_wait_ms_per_s"):
                wait.setdefault(r["label"], []).append(r["server_wait_ms_per_s"])

    points = {}
    for path in sorted(out.glob("*.csv")):
        if path.name in ("server_cpu.csv", "search.csv", "ladder.csv", "idle.csv",
                         "history.csv") or path.name.endswith(
            ".series.csv"
        ):
            continue
        runs = rows(path)
        if not runs or "p99_us" not in runs[0] or path.stem.endswith("-search"):
            continue
        label = runs[0]["label"]
        points[label] = {
            "runs": len(runs),
            "clients": runs[0]["clients"],
            "target": median(r["target_rate"] for r in runs),
            "recv": median(r["receive_rate"] for r in runs),
            "p50": median(r["p50_us"] for r in runs),
            "p99": median(r["p99_us"] for r in runs),
            "p999": median(r["p999_us"] for r in runs),
            "max": median(r["max_us"] for r in runs),
            "lost": sum(int(r["lost"]) for r in runs),
            "errors": sum(int(r["errors"]) for r in runs),
            "late": median(r["late_sends"] for r in runs),
            # loadgen reports CPU per message sent; per message received matches the
            # server's column (they differ in fan-out, where one send is many deliveries).
            "lg_cpu": median(
                float(r["loadgen_cpu_us_per_msg"]) * int(r["sent"]) / int(r["received"])
                for r in runs
                if r["loadgen_cpu_us_per_msg"] and int(r["received"])
            ),
            "srv_cpu": median(cpu.get(label, [])),
            "srv_wait": median(wait[label]) if wait.get(label) else None,
        }

    print(f"# Benchmark results: {out}\n")
    print("Medians over the runs of each point. Latency is corrected (from the scheduled")
    print("send time), in milliseconds; CPU in microseconds per message received (in")
    print("fan-out, per delivery). Server wait: milliseconds per second that the server's")
    print("threads, summed, spent runnable but waiting for a core (/proc/PID/task/*/schedstat).\n")
    print("| point | runs | clients | target msg/s | received msg/s | p50 | p99 | p99.9 | max "
          "| lost | errors | late sends | server CPU | loadgen CPU | server wait |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, p in points.items():
        srv_wait = "-" if p["srv_wait"] is None else f"{p['srv_wait']:.0f} ms/s"
        print(
            f"| {label} | {p['runs']} | {p['clients']} | {p['target']:.0f} | {p['recv']:.0f} "
            f"| {fmt_ms(p['p50'])} | {fmt_ms(p['p99'])} | {fmt_ms(p['p999'])} "
            f"| {fmt_ms(p['max'])} | {p['lost']} | {p['errors']} | {p['late']:.0f} "
            f"| {p['srv_cpu']:.2f} | {p['lg_cpu']:.2f} | {srv_wait} |"
        )

    base = points.get("tokio-line")
    if base:
        print("\n## Against the tokio echo baseline (ratio = ours / tokio; lower is better)\n")
        print("| point | p50 | p99 | p99.9 | max | server CPU per message |")
        print("|---|---|---|---|---|---|")
        for label, p in points.items():
            if label == "tokio-line" or not (label.startswith("echo") or label.startswith("server")):
                continue

            def ratio(key):
                return "-" if not base[key] else f"{p[key] / base[key]:.2f}x"

            print(f"| {label} | {ratio('p50')} | {ratio('p99')} | {ratio('p999')} "
                  f"| {ratio('max')} | {ratio('srv_cpu')} |")

    send_window(out)
    paired_table(points, "metrics-on-", "metrics-off-", "on", "off",
                 "--metrics scraped once a second against no metrics (ratio = on / off)")
    paired_table(points, "tls-on-", "tls-off-", "TLS", "plaintext",
                 "TLS against plaintext (ratio = TLS / plaintext)")
    paired_table(points, "history-on-", "history-off-", "on", "off",
                 "Room history kept (the default) against none (--history-messages 0); "
                 "ratio = on / off")
    churned = {label: path for label, path in churn_runs(out).items()}
    if churned:
        print("\n## Churn: members dropping and resuming during the run\n")
        print("| point | runs | reconnects | replayed | lost | duplicated | reordered "
              "| order breaks | no longer held | live p99 | replay p99 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, runs in churned.items():
            total = lambda key: sum(int(r[key] or 0) for r in runs)
            print(f"| {label} | {len(runs)} | {total('churn_reconnects')} | {total('replayed')} "
                  f"| {total('lost')} | {total('duplicated')} | {total('reordered')} "
                  f"| {total('order_breaks')} | {total('resume_missed')} "
                  f"| {fmt_ms(median(r['p99_us'] for r in runs))} "
                  f"| {fmt_ms(median(r['replay_p99_us'] for r in runs))} |")
    if (out / "history.csv").exists():
        by = {r["history"]: r for r in rows(out / "history.csv")}
        print("\n## History memory\n")
        for mode, r in by.items():
            print(f"- history {mode}: {r['rooms']} rooms filled past their limit, "
                  f"{int(r['history_bytes']) / 2**20:.1f} MiB of history kept (budget "
                  f"{int(r['budget_bytes']) / 2**20:.0f} MiB); server RSS grew "
                  f"{int(r['rss_growth_bytes']) / 2**20:.1f} MiB ({r['rss_before_kib']} to "
                  f"{r['rss_after_kib']} KiB)")
        if "on" in by and "off" in by:
            extra = int(by["on"]["rss_growth_bytes"]) - int(by["off"]["rss_growth_bytes"])
            print(f"\nRSS that history costs (on minus off): {extra / 2**20:.1f} MiB against a "
                  f"{int(by['on']['budget_bytes']) / 2**20:.0f} MiB budget.")
    brokers_table(points)
    cluster_table(points, cpu)
    paired_table(points, "this-", "previous-", "this", "previous",
                 "This build against the previous one (ratio = this / previous; lower is better)")

    if (out / "ladder.csv").exists():
        ladder = {}
        for r in rows(out / "ladder.csv"):
            ladder.setdefault(int(r["rate_per_client"]), {}).setdefault(r["server"], []).append(r)
        print("\n## Echo rate ladder (server and tokio in turn; median p99 over the reps)\n")
        print("| rate per client | runs | server p99 | tokio p99 | server / tokio | lost |")
        print("|---|---|---|---|---|---|")
        for rate in sorted(ladder):
            by = ladder[rate]
            ours = median(r["p99_us"] for r in by.get("server", []))
            theirs = median(r["p99_us"] for r in by.get("tokio", []))
            lost = sum(int(r["lost"]) for rs in by.values() for r in rs)
            ratio = "-" if not theirs or theirs != theirs else f"{ours / theirs:.2f}x"
            print(f"| {rate} | {len(by.get('server', []))} | {fmt_ms(ours)} | {fmt_ms(theirs)} "
                  f"| {ratio} | {lost} |")

    if (out / "search.csv").exists():
        print("\n## Highest echo rate under a p99 bound (no loss)\n")
        print("| server | p99 bound | clients | rate per client | total msg/s |")
        print("|---|---|---|---|---|")
        found = rows(out / "search.csv")
        top = None
        if (out / "ladder.csv").exists():
            top = max(int(r["rate_per_client"]) for r in rows(out / "ladder.csv"))
        for r in found:
            # Passing the top rung only says the limit is at least that.
            at_least = ">= " if top is not None and int(r["rate_per_client"]) == top else ""
            print(f"| {r['server']} | {int(r['p99_bound_us']) / 1000:g} ms | {r['clients']} "
                  f"| {at_least}{r['rate_per_client']} | {at_least}{r['total_rate']} |")
        by = {(r["server"], r["p99_bound_us"]): int(r["rate_per_client"]) for r in found}
        for bound in ("1000", "10000"):
            ours, theirs = by.get(("server", bound)), by.get(("tokio", bound))
            if ours is None or not theirs:
                continue
            # A server that passed the top rung may go higher: the ratio is then a bound.
            relation = "="
            if ours == top and theirs == top:
                relation = None
            elif ours == top:
                relation = ">="
            elif theirs == top:
                relation = "<="
            text = (f"{relation} {ours / theirs:.2f}x" if relation
                    else "not separated (both passed the top rung)")
            print(f"\nUnder p99 {int(bound) / 1000:g} ms: server / tokio {text}")

    if (out / "idle.csv").exists():
        r = rows(out / "idle.csv")[0]
        print("\n## Idle connections\n")
        print(f"{r['connections']} idle connections: {int(r['rss_per_conn_bytes']) / 1024:.1f} KiB "
              f"RSS each (from {r['rss_before_kib']} to {r['rss_after_kib']} KiB), "
              f"{r['idle_cpu_percent']} % CPU over 10 s.")


BROKERS = ("server", "redis", "nats")


def brokers_table(points):
    """Fan-out to one room against our server, Redis and NATS (labels
    brokers-TARGET-LOAD), one row per load and target, with p99 against our server's."""
    loads = []
    for label in points:
        if label.startswith("brokers-"):
            load = label.split("-", 2)[2]
            if load not in loads:
                loads.append(load)
    if not loads:
        return
    print("\n## Fan-out to one room: our server, Redis pub/sub, NATS\n")
    print("The same loadgen room run against each (ratio = p99 / our server's p99).\n")
    print("| load | target | runs | received msg/s | p50 | p99 | p99.9 | max | p99 ratio "
          "| lost | errors | server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for load in loads:
        ours = points.get(f"brokers-server-{load}")
        for target in BROKERS:
            p = points.get(f"brokers-{target}-{load}")
            if not p:
                continue
            ratio = "-"
            if ours and ours["p99"] and ours["p99"] == ours["p99"]:
                ratio = f"{p['p99'] / ours['p99']:.2f}x"
            print(f"| {load} | {target} | {p['runs']} | {p['recv']:.0f} | {fmt_ms(p['p50'])} "
                  f"| {fmt_ms(p['p99'])} | {fmt_ms(p['p999'])} | {fmt_ms(p['max'])} | {ratio} "
                  f"| {p['lost']} | {p['errors']} | {p['srv_cpu']:.2f} |")


def cluster_table(points, cpu):
    """Two nodes through Redis (labels cluster-two-LOAD) against one node
    (cluster-single-LOAD), with the CPU of each node and of Redis per delivery."""
    loads = [label.split("-", 2)[2] for label in points if label.startswith("cluster-two-")]
    if not loads:
        return
    print("\n## Two nodes through Redis against one node\n")
    print("The room's members (or the echo clients) split over the two nodes, one worker")
    print("each; the single node has two. CPU in microseconds per delivery (echo: per")
    print("reply).\n")
    print("| load | setup | runs | received msg/s | p50 | p99 | p99.9 | p99 ratio | lost "
          "| nodes CPU | node a | node b | Redis CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for load in loads:
        one = points.get(f"cluster-single-{load}")
        two = points.get(f"cluster-two-{load}")
        for setup, p in (("one node", one), ("two nodes", two)):
            if not p:
                continue
            ratio = "-"
            if setup == "two nodes" and one and one["p99"]:
                ratio = f"{p['p99'] / one['p99']:.2f}x"
            parts = ["-", "-", "-"]
            if setup == "two nodes":
                parts = [f"{median(cpu.get(f'cluster-two-{load}~{part}', [])):.2f}"
                         for part in ("a", "b", "redis")]
            print(f"| {load} | {setup} | {p['runs']} | {p['recv']:.0f} | {fmt_ms(p['p50'])} "
                  f"| {fmt_ms(p['p99'])} | {fmt_ms(p['p999'])} | {ratio} | {p['lost']} "
                  f"| {p['srv_cpu']:.2f} | {parts[0]} | {parts[1]} | {parts[2]} |")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(addr, seconds):
    host, port = addr.rsplit(":", 1)
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing accepts connections on {addr} after {seconds} s")


def churn_runs(out):
    """The runs of every point that churned, by label."""
    found = {}
    for path in sorted(Path(out).glob("*.csv")):
        if path.name.endswith(".series.csv"):
            continue
        runs = rows(path)
        if runs and runs[0].get("churn_reconnects"):
            found[runs[0]["label"]] = runs
    return found


class BenchError(Exception):
    """A step of the benchmark went wrong; bench.sh stops with this message."""


def count_rows(path):
    if not os.path.exists(path):
        return 0
    return len(rows(path))


def new_row(path, before, columns):
    """The named columns of the one row a run appended to the summary CSV at PATH,
    which held BEFORE rows before it."""
    after = count_rows(path)
    if after != before + 1:
        raise BenchError(
            f"{path}: expected exactly one new row after the run ({before} before), "
            f"found {after - before}; the run's numbers are not there")
    row = rows(path)[-1]
    missing = [c for c in columns if c not in row]
    if missing:
        raise BenchError(f"{path}: no column {', '.join(missing)}")
    return [row[c] for c in columns]


def server_cpu(path, label, rep, t0, t1, hz, received, warmup, duration,
               wait0="", wait1="", clock0="", clock1=""):
    # The server also works during warmup, so count those messages too.
    received = float(received or 0)
    total = received * (float(warmup) + float(duration)) / float(duration)
    cpu_us = (int(t1) - int(t0)) / int(hz) * 1e6
    per_msg = cpu_us / total if total else float("nan")
    # Run-queue wait of the server's threads (ns, summed) over the same span of wall
    # clock (ns): milliseconds of waiting for a core per second.
    wait = ""
    if wait0 and wait1 and clock0 and clock1 and int(clock1) > int(clock0):
        waited_ms = (float(wait1) - float(wait0)) / 1e6
        wait = f"{waited_ms / ((int(clock1) - int(clock0)) / 1e9):.1f}"
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("label,rep,server_cpu_s,messages,server_cpu_us_per_msg,"
                    "server_wait_ms_per_s\n")
        f.write(f"{label},{rep},{cpu_us/1e6:.3f},{int(total)},{per_msg:.3f},{wait}\n")
    return per_msg


def search(ladder, out, clients):
    clients = int(clients)
    runs = {}
    for r in rows(ladder):
        runs.setdefault((r["server"], int(r["rate_per_client"])), []).append(r)
    with open(out, "w") as f:
        f.write("server,p99_bound_us,clients,rate_per_client,total_rate\n")
        for server in ("server", "tokio"):
            rates = sorted(rate for (name, rate) in runs if name == server)
            for bound in (1000, 10000):
                best = 0
                for rate in rates:
                    rr = runs[(server, rate)]
                    p99 = statistics.median(int(r["p99_us"]) for r in rr)
                    if p99 > bound or any(int(r["lost"]) for r in rr):
                        break
                    best = rate
                f.write(f"{server},{bound},{clients},{best},{best * clients}\n")
                print(f"    {server}: median p99 <= {bound} us up to {best}/s per client")


def scrape(log, seconds):
    end = time.time() + float(seconds)
    addr = None
    while addr is None and time.time() < end:
        time.sleep(0.05)
        try:
            text = open(log).read()
        except FileNotFoundError:
            continue
        found = re.search(r"^metrics on (\S+)$", text, re.M)
        addr = found.group(1) if found else None
    while addr and time.time() < end:
        try:
            urllib.request.urlopen(f"http://{addr}/metrics", timeout=2).read()
            print("scraped", flush=True)
        except OSError:
            pass
        time.sleep(1)


# The binary protocol version the server speaks (shared::PROTOCOL_VERSION).
PROTOCOL_VERSION = 2


def idle_clients(addr, count, ready):
    host, port = addr.rsplit(":", 1)
    socks = []
    for _ in range(int(count)):
        s = socket.create_connection((host, int(port)))
        s.sendall(struct.pack(">IBH", 3, 0x01, PROTOCOL_VERSION))  # Hello
        socks.append(s)
    open(ready, "w").close()
    time.sleep(60)


def idle_csv(path, n, rss0, rss1, t0, t1, hz):
    n = int(n)
    per_conn = (int(rss1) - int(rss0)) * 1024 / n
    cpu_pct = (int(t1) - int(t0)) / int(hz) / 10 * 100
    with open(path, "w") as f:
        f.write("connections,rss_before_kib,rss_after_kib,rss_per_conn_bytes,idle_cpu_percent\n")
        f.write(f"{n},{rss0},{rss1},{per_conn:.0f},{cpu_pct:.2f}\n")
    print(f"    {n} idle connections: {per_conn:.0f} bytes RSS each, {cpu_pct:.2f} % CPU over 10 s")


def stat(addr, name):
    """One counter from the server's `/stats`, asked in text mode."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"/stats\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            found = re.search(rb"^\*\s+" + re.escape(name.encode()) + rb" (\d+)$", data, re.M)
            if found:
                return int(found.group(1))
    raise BenchError(f"no {name} in the /stats of {addr}")


def history_csv(path, mode, rooms, budget, rss0, rss1, held):
    growth = (int(rss1) - int(rss0)) * 1024
    new = not os.path.exists(path)
    with open(path, "a") as f:
        if new:
            f.write("history,rooms,budget_bytes,history_bytes,rss_before_kib,rss_after_kib,"
                    "rss_growth_bytes\n")
        f.write(f"{mode},{rooms},{budget},{held},{rss0},{rss1},{growth}\n")
    print(f"    history {mode}, {rooms} rooms: history {int(held) / 2**20:.1f} MiB kept "
          f"(budget {int(budget) / 2**20:.0f} MiB), RSS grew {growth / 2**20:.1f} MiB")


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        if command == "summary":
            summary(*args)
        elif command == "rows":
            print(count_rows(*args))
        elif command == "new-row":
            print(" ".join(new_row(args[0], int(args[1]), args[2:])))
        elif command == "server-cpu":
            print(f"{server_cpu(*args):.3f}")
        elif command == "search":
            search(*args)
        elif command == "scrape":
            scrape(*args)
        elif command == "idle-clients":
            idle_clients(*args)
        elif command == "idle-csv":
            idle_csv(*args)
        elif command == "stat":
            print(stat(*args))
        elif command == "history-csv":
            history_csv(*args)
        elif command == "free-port":
            print(free_port())
        elif command == "wait-port":
            wait_port(*args)
        elif command == "div":
            value = float(args[0])
            for b in args[1:]:
                value /= float(b)
            print(f"{value:.12g}")
        else:
            print(f"bench.py: unknown command {command}\n{__doc__}", file=sys.stderr)
            return 2
    except BenchError as e:
        print(f"bench.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
