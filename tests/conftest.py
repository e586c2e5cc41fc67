"""Shared fixtures for the unit tests."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one torch thread: the oracle's tensors are tiny, and on a busy machine a
    second thread only adds hand-offs. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
