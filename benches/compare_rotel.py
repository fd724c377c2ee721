#!/usr/bin/env python3
"""Side-by-side benchmark of sidewatch and rotel on this machine.

Each collector runs the same pipeline: OTLP/gRPC in on 127.0.0.1:4317 ->
batch (8192 spans, 200 ms) -> OTLP/gRPC out, uncompressed, to a counting
sink on 127.0.0.1:14317. The collector is pinned to CPU 0 with taskset; the
load generator and the sink share CPU 1. The two collectors alternate for
--rounds rounds, once as fast as each accepts and once at the same fixed
rate (--fixed-rate, below both maxima: the same load); medians and the
sidewatch / rotel ratio are printed for each.

    python3 benches/compare_rotel.py --rounds 3 --duration 10

--persistent-queue gives sidewatch's exporter a persistent queue
(`sending_queue.storage` in a fresh directory under target/, fsync
`always`); --only sidewatch skips rotel; --sidewatch-binary runs another
build (an older one, for before/after figures).

Needs: cargo, taskset, python3 -m venv (rotel is installed from PyPI into
target/bench-venv). Loopback only; every run is bounded by --duration.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target", "release")
VENV = os.path.join(ROOT, "target", "bench-venv")
TICKS = os.sysconf("SC_CLK_TCK")

SIDEWATCH_CONFIG = """
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:4317, max_recv_msg_size_mib: 16 } } }
processors:
  batch: { send_batch_size: 8192, send_batch_max_size: 8192, timeout: 200ms }
exporters:
  otlp:
    endpoint: http://127.0.0.1:14317
    compression: none
    sending_queue: { queue_size: 8, num_consumers: 4 }
    retry_on_failure: { initial_interval: 100ms, max_interval: 1s }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [otlp] }
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def rotel_binary():
    if not os.path.exists(os.path.join(VENV, "bin", "python")):
        run([sys.executable, "-m", "venv", VENV])
    python = os.path.join(VENV, "bin", "python")
    found = subprocess.run([python, "-c", "import rotel, os; print(os.path.dirname(rotel.__file__))"], capture_output=True, text=True)
    if found.returncode != 0:
        run([os.path.join(VENV, "bin", "pip"), "install", "-q", "rotel"])
        found = subprocess.run([python, "-c", "import rotel, os; print(os.path.dirname(rotel.__file__))"], capture_output=True, text=True, check=True)
    return os.path.join(found.stdout.strip(), "rotel-agent")


def collector_command(name, rotel, args):
    if name == "sidewatch":
        path = os.path.join(ROOT, "target", "bench-sidewatch.yaml")
        config = SIDEWATCH_CONFIG
        if args.persistent_queue:
            storage = os.path.join(ROOT, "target", "bench-queue")
            subprocess.run(["rm", "-rf", storage], check=True)
            config = config.replace("sending_queue: { queue_size: 8,",
                                    f"sending_queue: {{ storage: {storage}, queue_size: 1000,")
        with open(path, "w") as f:
            f.write(config)
        binary = args.sidewatch_binary or os.path.join(TARGET, "sidewatch")
        return [binary, "run", "--config", path]
    return [rotel, "start", "--otlp-grpc-endpoint", "127.0.0.1:4317", "--otlp-http-endpoint", "127.0.0.1:4319",
            "--otlp-receiver-metrics-disabled", "--otlp-receiver-logs-disabled",
            "--batch-max-size", "8192", "--batch-timeout", "200ms", "--exporter", "otlp",
            "--otlp-exporter-endpoint", "http://127.0.0.1:14317", "--otlp-exporter-protocol", "grpc",
            "--otlp-exporter-compression", "none", "--pid-file", os.path.join(ROOT, "target", "rotel.pid")]


def wait_port(port, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            return time.monotonic() - start
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"nothing listening on {port} after {limit}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def sink_spans():
    with urllib.request.urlopen("http://127.0.0.1:14318/counts", timeout=2) as r:
        return json.load(r)["spans"]


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def one_run(name, rotel, args, rate=0):
    sink = subprocess.Popen(["taskset", "-c", "1", os.path.join(TARGET, "examples", "otlp_sink")], stderr=subprocess.DEVNULL)
    wait_port(14318)
    started = time.monotonic()
    collector = subprocess.Popen(["taskset", "-c", "0"] + collector_command(name, rotel, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_port(4317) if True else None
        ready_ms = (time.monotonic() - started) * 1000
        time.sleep(1.0)
        idle_rss = status_kib(collector.pid, "VmRSS")
        cpu_before = cpu_seconds(collector.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", os.path.join(TARGET, "examples", "loadgen"), "--endpoint", "http://127.0.0.1:4317",
             "--batch-size", str(args.batch_size), "--connections", "2", "--concurrency", "4",
             "--duration", f"{args.duration}s", "--rate", str(rate)],
            capture_output=True, text=True, check=True)
        load = json.loads(out.stdout.strip().splitlines()[-1])
        # Wait for the pipeline to deliver what it accepted (bounded).
        deadline = time.monotonic() + 15
        delivered = sink_spans()
        while delivered < load["accepted_items"] and time.monotonic() < deadline:
            time.sleep(0.1)
            delivered = sink_spans()
        cpu = cpu_seconds(collector.pid) - cpu_before
        peak_rss = status_kib(collector.pid, "VmHWM")
        del ready
    finally:
        stop(collector)
        stop(sink)
    return {
        "spans_per_second": load["accepted_items_per_second"],
        "spans_per_cpu_second": load["accepted_items"] / cpu if cpu > 0 else 0.0,
        "latency_p50_ms": load["latency_p50_micros"] / 1000,
        "latency_p99_ms": load["latency_p99_micros"] / 1000,
        "peak_rss_mib": peak_rss / 1024,
        "idle_rss_mib": idle_rss / 1024,
        "ready_ms": ready_ms,
        "accepted": load["accepted_items"],
        "delivered": delivered,
        "refused": load["refused_items"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--batch-size", type=int, default=512, help="spans per client request")
    parser.add_argument("--fixed-rate", type=int, default=100000,
                        help="spans/s of the same-load runs (below both collectors' maximum); 0 skips them")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--persistent-queue", action="store_true",
                        help="give sidewatch's exporter sending_queue.storage (fsync always)")
    parser.add_argument("--only", choices=["sidewatch", "rotel"], help="run one collector")
    parser.add_argument("--sidewatch-binary", help="the sidewatch to run (default target/release/sidewatch)")
    parser.add_argument("--build-dir", help="where loadgen, otlp_sink and sidewatch are (default target/release)")
    args = parser.parse_args()
    if args.build_dir:
        global TARGET
        TARGET = os.path.abspath(args.build_dir)
    if not args.skip_build:
        run(["cargo", "build", "--release", "--bin", "sidewatch", "--example", "loadgen", "--example", "otlp_sink"], cwd=ROOT)
    names = [args.only] if args.only else ["sidewatch", "rotel"]
    rotel = rotel_binary() if "rotel" in names else None
    # Two loads: as fast as each collector accepts (its maximum), and the
    # same fixed rate for both (what each costs for the same work).
    loads = [("max", 0)] + ([("fixed", args.fixed_rate)] if args.fixed_rate else [])
    results = {(load, name): [] for load, _ in loads for name in names}
    for round_number in range(args.rounds):
        for load, rate in loads:
            for name in names:
                result = one_run(name, rotel, args, rate)
                results[(load, name)].append(result)
                print(f"round {round_number + 1} {load} {name}: " + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
    keys = ["spans_per_second", "spans_per_cpu_second", "latency_p50_ms", "latency_p99_ms", "peak_rss_mib", "idle_rss_mib", "ready_ms"]
    for load, rate in loads:
        title = "as fast as accepted" if rate == 0 else f"fixed rate {rate} spans/s"
        print(f"\n{title}")
        if len(names) == 1:
            print(f"{'median of ' + str(args.rounds):<22}{names[0]:>14}")
            for key in keys:
                print(f"{key:<22}{statistics.median(r[key] for r in results[(load, names[0])]):>14.1f}")
            continue
        print(f"{'median of ' + str(args.rounds):<22}{'sidewatch':>14}{'rotel':>14}{'sidewatch/rotel':>18}")
        for key in keys:
            s = statistics.median(r[key] for r in results[(load, "sidewatch")])
            r = statistics.median(x[key] for x in results[(load, "rotel")])
            print(f"{key:<22}{s:>14.1f}{r:>14.1f}{(s / r if r else float('nan')):>18.2f}")
    for (load, name), runs in results.items():
        lost = sum(x["accepted"] - x["delivered"] for x in runs)
        refused = sum(x["refused"] for x in runs)
        print(f"{load} {name}: accepted - delivered over all runs = {lost}, refused = {refused}")


if __name__ == "__main__":
    main()
