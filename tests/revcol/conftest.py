import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These small models run fastest, and steadiest on a shared machine, on one thread (the
    per-op work is tiny; a second thread mostly waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
