#!/usr/bin/env python3
"""Replay speed: 200,000 CSV points (one a minute, a sine with noise and one
spike) through a config with an `anomaly` and an `alert` connector.

    cargo build --release
    python3 benches/replay_speed.py target/release/sidewatch [OTHER_SIDEWATCH ...]

Prints wall time and peak RSS (GNU time) per binary, and whether the
anomaly scores agree between them.
"""
import math
import os
import random
import subprocess
import sys
import tempfile

CONFIG = """
receivers:
  otlp: {}
connectors:
  anomaly: { metrics: [value], threshold: 0.4, quiet_points: 5 }
  alert:
    evaluation_interval: 1m
    rules:
      - { name: Hot, metric: value, op: ">", warning: 80, critical: 90, for: 5m }
exporters:
  debug: {}
service:
  pipelines:
    metrics: { receivers: [otlp], exporters: [anomaly, alert] }
    metrics/scored: { receivers: [anomaly], exporters: [debug] }
    logs: { receivers: [anomaly, alert], exporters: [debug] }
"""


def main():
    binaries = sys.argv[1:] or ["target/release/sidewatch"]
    with tempfile.TemporaryDirectory() as dir:
        config = os.path.join(dir, "anomaly.yaml")
        with open(config, "w") as f:
            f.write(CONFIG)
        data = os.path.join(dir, "big.csv")
        random.seed(1)
        with open(data, "w") as f:
            f.write("timestamp,value\n")
            for i in range(200_000):
                spike = 40 if 100_000 < i < 100_030 else 0
                value = 50 + 20 * math.sin(i / 300) + random.gauss(0, 2) + spike
                f.write(f"{1_700_000_000 + i * 60},{value:.3f}\n")
        scores = []
        for n, binary in enumerate(binaries):
            out = os.path.join(dir, f"out{n}.csv")
            run = subprocess.run(
                ["/usr/bin/time", "-f", "%e s, peak RSS %M KB", binary,
                 "replay", "-c", config, "-i", data, "-o", out],
                capture_output=True, text=True, check=True)
            print(f"{binary}: {run.stderr.strip().splitlines()[-1]}")
            with open(out) as f:
                scores.append([(l.split(",")[0], l.split(",")[-1]) for l in f])
        if len(scores) > 1:
            same = all(s == scores[0] for s in scores[1:])
            print("anomaly scores agree" if same else "anomaly scores DIFFER")


if __name__ == "__main__":
    main()
