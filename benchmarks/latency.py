"""Latency benchmark as a script; the same as `mersdk bench` (see mersdk/bench.py).

With ../shared/data (or --data DIR): real clips and their lyrics, every backend and vibenet side by
side, quiet and beside N busy processes:

    python benchmarks/latency.py --songs 30 --background-load 2 \
        --json benchmarks/results/latency_real.json --md benchmarks/results/latency_real.md

Without data (or with --synthetic): the synthetic benchmark, labelled as such:

    python benchmarks/latency.py --synthetic --json benchmarks/results/latency_cpu.json --md benchmarks/results/latency_cpu.md
"""

import argparse
import sys

from mersdk.bench import add_args, main_from_args

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="mersdk latency benchmark")
    add_args(ap)
    sys.exit(main_from_args(ap.parse_args()))
