import os
import sys
from pathlib import Path

import pytest

from revact.data.synthetic import write_synthetic_idx


@pytest.fixture(scope="session")
def revact_bin() -> str:
    """The ``revact`` console script of the running interpreter's environment."""
    return str(Path(sys.executable).parent / "revact")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A folder with small synthetic Fashion-MNIST-format IDX files (--data-dir)."""
    return write_synthetic_idx(tmp_path_factory.mktemp("idx"), n_train=1400, n_test=300)


@pytest.fixture
def cli_env() -> dict:
    # One thread per process: deterministic and gentle on shared 2-core machines.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
