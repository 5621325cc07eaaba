"""Speed and memory benchmarks, reported as ratios to a baseline of the same run."""

from revact.bench.activations import run_activation_bench
from revact.bench.memory import saved_tensor_bytes

__all__ = ["run_activation_bench", "saved_tensor_bytes"]
