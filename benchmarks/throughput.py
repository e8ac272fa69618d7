"""Samples/s of streamrnn against a PyTorch per-sample TBPTT loop on the same stream.

The measurement and the table live in ``streamrnn.bench`` (also ``streamrnn bench``);
see its docstring for what each column runs.

Usage: python benchmarks/throughput.py [--cell gru] [--hidden 64] [--input 8] [--k 16]
       [--steps 20000] [--torch-steps 3000] [--all] [--no-torch] [--dtype float64|float32]
       [--repeat N]
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from streamrnn import bench  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bench.add_arguments(ap)
    bench.run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
