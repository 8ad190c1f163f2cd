"""srom engine: stochastic reduced-order models trained by amortized reparametrization.

GUI-free. The public API is re-exported here.
"""

from engine.cancellation import PredictionCancelled
from engine.config import ModelConfig
from engine.data import Dataset, DatasetError, load_dataset
from engine.io import ModelFileError
from engine.model import ExtrapolationWarning, NotFittedError, StochasticROM, load_model
from engine.prediction import Prediction
from engine.progress import RecordingCallback, StopFlag, TqdmCallback
from engine.streaming import StreamingDataset

__all__ = [
    "Dataset", "DatasetError", "load_dataset", "StochasticROM", "ModelConfig", "load_model", "Prediction",
    "ModelFileError", "NotFittedError", "ExtrapolationWarning", "StopFlag", "TqdmCallback",
    "RecordingCallback", "StreamingDataset", "PredictionCancelled",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Submodules that need optional-at-import packages (param) load on first use, so the
    # core engine imports on machines without them.
    if name in ("systems", "forcing", "metrics"):
        import importlib

        return importlib.import_module(f"engine.{name}")
    raise AttributeError(f"module 'engine' has no attribute '{name}'")
