"""srom engine: stochastic reduced-order models trained by amortized reparametrization.

GUI-free. The public API is re-exported here.
"""

from engine.data import Dataset, DatasetError, load_dataset

__all__ = ["Dataset", "DatasetError", "load_dataset"]
__version__ = "0.1.0"
