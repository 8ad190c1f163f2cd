"""A trained model as a zip archive, for the Train tab's *Download model* button (GUI-free).

The archive holds the model directory that :meth:`engine.StochasticROM.save` writes, under
one folder named after the model::

    my-model/config.json
    my-model/model.safetensors
    my-model/initial_states.safetensors     (when the model kept states of its data)

It is built in a temporary folder that is removed before the bytes are returned; member
names are relative (no server folder appears in the archive), and ``load_model`` reads the
unpacked folder as it is.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path

from engine.initial_states import INITIAL_STATES_NAME
from engine.io import save_model

__all__ = ["model_zip", "ARCHIVE_FILES"]

#: the files of a model directory that go into the archive, in this order
ARCHIVE_FILES = ("config.json", "model.safetensors", INITIAL_STATES_NAME)
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def model_zip(model, name: str, metrics: dict | None = None) -> bytes:
    """The zip archive of ``model`` saved under the folder ``name``.

    Args:
        model: a fitted ``engine.StochasticROM``.
        name: the archive's folder: 1–64 letters, digits, ``.``, ``_`` or ``-``, starting
            with a letter or digit.
        metrics: scores stored in ``config.json`` beside the model (as ``save`` does).

    Raises:
        ValueError: an unsafe folder name.
        engine.NotFittedError: ``model`` is not fitted.
    """
    if not isinstance(name, str) or not _FOLDER.fullmatch(name):
        raise ValueError("the archive's folder name must be 1-64 letters, digits, '.', '_' or "
                         "'-', starting with a letter or digit")
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="srom-zip-") as tmp:
        folder = Path(tmp) / "model"
        save_model(model, folder, metrics=metrics)
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in ARCHIVE_FILES:
                if (folder / file).is_file():
                    archive.write(folder / file, arcname=f"{name}/{file}")
    return buffer.getvalue()
