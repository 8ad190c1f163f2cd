import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True, scope="session")
def _private_jobs_dir(tmp_path_factory):
    """Training records of the tests' servers and workers stay out of ~/.srom/jobs."""
    os.environ["SROM_JOBS_DIR"] = str(tmp_path_factory.mktemp("jobs"))


@pytest.fixture(autouse=True, scope="session")
def _private_state_cache(tmp_path_factory):
    """Simulator initial states the tests make stay out of the user's cache (~/.cache/srom)."""
    os.environ["SROM_CACHE_DIR"] = str(tmp_path_factory.mktemp("state-cache"))


@pytest.fixture(scope="session")
def ou_train():
    from problems import ou_dataset

    return ou_dataset(16, seed=0)
