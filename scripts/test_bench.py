"""Tests of scripts/bench.sh's settings and of the helpers in scripts/bench.py that guard
its numbers. Run: python3 -m unittest discover -s scripts -p 'test_*.py'"""

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import bench  # noqa: E402

HEADER = "label,received,p99_us,p999_us,lost\n"


def settings(*args):
    """What bench.sh --dry-run says it would do with ARGS."""
    done = subprocess.run(["bash", str(SCRIPTS / "bench.sh"), *args, "--dry-run"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


class NewRow(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.csv = os.path.join(self.dir.name, "echo.csv")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, *rows):
        with open(self.csv, "w") as f:
            f.write(HEADER + "".join(rows))

    def test_the_one_new_row_is_read(self):
        self.write("echo,10,100,200,0\n", "echo,20,300,400,1\n")
        self.assertEqual(bench.new_row(self.csv, 1, ["received", "p99_us", "lost"]),
                         ["20", "300", "1"])

    def test_a_run_that_added_no_row_is_refused(self):
        # The failed run's would-be numbers are the previous run's: refuse them.
        self.write("echo,10,100,200,0\n")
        with self.assertRaisesRegex(bench.BenchError, "exactly one new row.*found 0"):
            bench.new_row(self.csv, 1, ["p99_us"])

    def test_a_missing_csv_is_refused(self):
        with self.assertRaisesRegex(bench.BenchError, "found 0"):
            bench.new_row(self.csv, 0, ["p99_us"])

    def test_two_new_rows_are_refused(self):
        self.write("echo,10,100,200,0\n", "echo,20,300,400,1\n")
        with self.assertRaisesRegex(bench.BenchError, "found 2"):
            bench.new_row(self.csv, 0, ["p99_us"])

    def test_the_command_line_exits_1_with_the_reason(self):
        self.write("echo,10,100,200,0\n")
        done = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "new-row", self.csv,
                               "1", "p99_us"], capture_output=True, text=True)
        self.assertEqual(done.returncode, 1)
        self.assertIn("expected exactly one new row", done.stderr)
        self.assertEqual(done.stdout, "")

    def test_rows_counts_data_rows(self):
        self.assertEqual(bench.count_rows(self.csv), 0)
        self.write("echo,10,100,200,0\n", "echo,20,300,400,1\n")
        self.assertEqual(bench.count_rows(self.csv), 2)


class SendWindow(unittest.TestCase):
    """The sendwindow point's table: CPU ratios taken within each rep, then medians."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.out = Path(self.dir.name)

    def tearDown(self):
        self.dir.cleanup()

    def write(self, label, cpus):
        with open(self.out / f"{label}.csv", "w") as f:
            f.write("label,p99_us,loadgen_cpu_us_per_msg,trustworthy\n")
            for cpu in cpus:
                f.write(f"{label},1000,{cpu},true\n")

    def test_ratios_are_taken_within_each_rep(self):
        # Rep 2 ran on a busier machine: both settings cost more, the ratio holds.
        self.write("sw0-server-echo", [20, 40, 22])
        self.write("sw1ms-server-echo", [5, 10, 5.5])
        self.write("sw0-tokio-line", [18, 36, 20])
        self.write("sw1ms-tokio-line", [5, 10, 5])
        with open(self.out / "server_cpu.csv", "w") as f:
            f.write("label,rep,server_cpu_s,messages,server_cpu_us_per_msg\n")
            reps = [(10, 4, 8, 5), (20, 8, 16, 10), (11, 4.4, 9, 5)]
            for rep, (a, b, c, d) in enumerate(reps, 1):
                f.write(f"sw0-server-echo,{rep},1,1,{a}\nsw1ms-server-echo,{rep},1,1,{b}\n")
                f.write(f"sw0-tokio-line,{rep},1,1,{c}\nsw1ms-tokio-line,{rep},1,1,{d}\n")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            bench.send_window(self.out)
        text = buf.getvalue()
        self.assertIn("| server-echo | median | 22.00 | 5.50 | 0.25x | 11.00 | 4.40 | 0.40x |", text)
        self.assertIn("| tokio-line | 2 | 36.00 | 10.00 | 0.28x | 16.00 | 10.00 | 0.62x |", text)
        self.assertIn("1.25x with --send-window 0, 0.80x with 1ms.", text)

    def test_nothing_is_printed_without_the_point(self):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            bench.send_window(self.out)
        self.assertEqual(buf.getvalue(), "")


class ServerCpu(unittest.TestCase):
    def test_the_wait_column_is_ms_of_waiting_per_second_of_wall_clock(self):
        with tempfile.TemporaryDirectory() as out:
            path = os.path.join(out, "server_cpu.csv")
            # 300 ms of waiting (ns) over 2 s of wall clock (ns): 150 ms per second.
            bench.server_cpu(path, "p", 1, 0, 100, 100, 1000, 0, 1,
                             "1000000000", "1300000000", "5000000000", "7000000000")
            # Without the figures (a broker, a kernel without schedstat): left empty.
            bench.server_cpu(path, "p", 2, 0, 100, 100, 1000, 0, 1)
            # Sums past 2^31 in any notation awk may print them in.
            bench.server_cpu(path, "p", 3, 0, 100, 100, 1000, 0, 1,
                             "5000000000", "5.5e+09", "5000000000", "6000000000")
            got = bench.rows(path)
            self.assertEqual(got[0]["server_wait_ms_per_s"], "150.0")
            self.assertEqual(got[1]["server_wait_ms_per_s"], "")
            self.assertEqual(got[2]["server_wait_ms_per_s"], "500.0")
            self.assertEqual(got[0]["server_cpu_us_per_msg"], "1000.000")


class Settings(unittest.TestCase):
    def test_quick_keeps_an_explicit_reps_and_duration(self):
        self.assertIn("reps 2,", settings("--reps", "2", "--quick"))
        self.assertIn("reps 2,", settings("--quick", "--reps", "2"))
        self.assertIn("duration 7s,", settings("--duration", "7", "--quick"))

    def test_quick_alone_and_the_defaults(self):
        quick = settings("--quick")
        self.assertIn("reps 1, duration 3s, warmup 1s, clients 200 x 50/s", quick)
        full = settings()
        self.assertIn("reps 3, duration 10s, warmup 3s, clients 1000 x 50/s", full)


class Brokers(unittest.TestCase):
    def test_the_brokers_section_is_run_by_default(self):
        self.assertIn(",brokers,", settings())

    def test_free_port_is_a_bindable_loopback_port(self):
        import socket
        port = int(subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "free-port"],
                                  capture_output=True, text=True, check=True).stdout)
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_wait_port_gives_up_with_the_reason(self):
        port = bench.free_port()
        with self.assertRaisesRegex(bench.BenchError, f"127.0.0.1:{port} after 0.2 s"):
            bench.wait_port(f"127.0.0.1:{port}", "0.2")

    def test_the_summary_compares_the_brokers_with_our_server(self):
        columns = ["label", "clients", "target_rate", "receive_rate", "p50_us", "p99_us",
                   "p999_us", "max_us", "lost", "errors", "late_sends", "sent", "received",
                   "loadgen_cpu_us_per_msg"]
        with tempfile.TemporaryDirectory() as out:
            for target, p99 in (("server", 1000), ("redis", 2000), ("nats", 500)):
                label = f"brokers-{target}-50k"
                with open(os.path.join(out, f"{label}.csv"), "w") as f:
                    f.write(",".join(columns) + "\n")
                    for p in (p99, p99 + 10, p99 - 10):
                        f.write(f"{label},1000,50,50000,100,{p},{p},{p},0,0,0,50,50000,1.0\n")
            done = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "summary", out],
                                  capture_output=True, text=True, check=True).stdout
        section = done[done.index("## Fan-out to one room"):]
        self.assertIn("| 50k | server | 3 | 50000 | 0.100 | 1.000 | 1.000 | 1.000 | 1.00x |", section)
        self.assertIn("| 50k | redis | 3 | 50000 | 0.100 | 2.000 | 2.000 | 2.000 | 2.00x |", section)
        self.assertIn("| 50k | nats | 3 | 50000 | 0.100 | 0.500 | 0.500 | 0.500 | 0.50x |", section)


class Cluster(unittest.TestCase):
    def test_the_cluster_section_is_run_by_default(self):
        self.assertIn(",cluster,", settings())

    def test_the_summary_puts_two_nodes_next_to_one_with_each_process_cpu(self):
        columns = ["label", "clients", "target_rate", "receive_rate", "p50_us", "p99_us",
                   "p999_us", "max_us", "lost", "errors", "late_sends", "sent", "received",
                   "loadgen_cpu_us_per_msg"]
        with tempfile.TemporaryDirectory() as out:
            for setup, p99 in (("single", 1000), ("two", 1500)):
                label = f"cluster-{setup}-50k"
                with open(os.path.join(out, f"{label}.csv"), "w") as f:
                    f.write(",".join(columns) + "\n")
                    f.write(f"{label},1000,50,50000,100,{p99},{p99},{p99},0,0,0,50,50000,1.0\n")
            with open(os.path.join(out, "server_cpu.csv"), "w") as f:
                f.write("label,rep,server_cpu_s,messages,server_cpu_us_per_msg\n")
                for label, cpu in (("cluster-single-50k", 4.0), ("cluster-two-50k", 5.0),
                                   ("cluster-two-50k~a", 2.5), ("cluster-two-50k~b", 2.5),
                                   ("cluster-two-50k~redis", 1.25)):
                    f.write(f"{label},1,1,1,{cpu}\n")
            done = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "summary", out],
                                  capture_output=True, text=True, check=True).stdout
        section = done[done.index("## Two nodes through Redis"):]
        self.assertIn("| 50k | one node | 1 | 50000 | 0.100 | 1.000 | 1.000 | - | 0 | 4.00 | - | - | - |",
                      section)
        self.assertIn("| 50k | two nodes | 1 | 50000 | 0.100 | 1.500 | 1.500 | 1.50x | 0 | 5.00 "
                      "| 2.50 | 2.50 | 1.25 |", section)


class Script(unittest.TestCase):
    def test_bench_sh_holds_no_inline_python_and_keeps_server_output(self):
        text = (SCRIPTS / "bench.sh").read_text()
        self.assertNotIn("python3 -", text)
        self.assertNotIn("<<'EOF'", text)
        start = text[text.index("start_server() {"):]
        launch = [line.strip() for line in start.splitlines() if line.strip().startswith('"$@"')]
        # The server's stdout and stderr both go to its log in the output directory.
        self.assertEqual(launch[0], '"$@" >"$log" 2>&1 &')

    def test_div_gives_per_client_rates(self):
        def div(*args):
            return subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "div", *args],
                                  capture_output=True, text=True, check=True).stdout.strip()
        self.assertEqual(div("50", "1000"), "0.05")
        self.assertEqual(div("1000000", "200", "200"), "25")


if __name__ == "__main__":
    unittest.main()
