#!/usr/bin/env python3
"""Summarizes a scripts/bench.sh result directory as Markdown: the median of every
point over its repetitions, server CPU per message, ratios against the tokio baseline,
the rate ladder and the highest rate under each p99 bound, and the idle-connection
figures.

Usage: python3 scripts/bench_summary.py RESULTS_DIR
"""

import csv
import statistics
import sys
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


def main():
    out = Path(sys.argv[1])
    cpu = {}
    if (out / "server_cpu.csv").exists():
        for r in rows(out / "server_cpu.csv"):
            cpu.setdefault(r["label"], []).append(r["server_cpu_us_per_msg"])

    points = {}
    for path in sorted(out.glob("*.csv")):
        if path.name in ("server_cpu.csv", "search.csv", "ladder.csv", "idle.csv") or path.name.endswith(
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
        }

    print(f"# Benchmark results: {out}\n")
    print("Medians over the runs of each point. Latency is corrected (from the scheduled")
    print("send time), in milliseconds; CPU in microseconds per message received (in")
    print("fan-out, per delivery).\n")
    print("| point | runs | clients | target msg/s | received msg/s | p50 | p99 | p99.9 | max "
          "| lost | errors | late sends | server CPU | loadgen CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, p in points.items():
        print(
            f"| {label} | {p['runs']} | {p['clients']} | {p['target']:.0f} | {p['recv']:.0f} "
            f"| {fmt_ms(p['p50'])} | {fmt_ms(p['p99'])} | {fmt_ms(p['p999'])} "
            f"| {fmt_ms(p['max'])} | {p['lost']} | {p['errors']} | {p['late']:.0f} "
            f"| {p['srv_cpu']:.2f} | {p['lg_cpu']:.2f} |"
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

    paired_table(points, "metrics-on-", "metrics-off-", "on", "off",
                 "--metrics scraped once a second against no metrics (ratio = on / off)")
    paired_table(points, "tls-on-", "tls-off-", "TLS", "plaintext",
                 "TLS against plaintext (ratio = TLS / plaintext)")
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


if __name__ == "__main__":
    main()
