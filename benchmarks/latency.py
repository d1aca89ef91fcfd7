"""Latency benchmark as a script; the same as `mersdk bench` (see mersdk/bench.py).

    python benchmarks/latency.py --json benchmarks/results/latency_cpu.json --md benchmarks/results/latency_cpu.md
"""

import argparse
import sys

from mersdk.bench import add_args, main_from_args

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="mersdk latency benchmark")
    add_args(ap)
    sys.exit(main_from_args(ap.parse_args()))
