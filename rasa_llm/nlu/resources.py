"""Reading a component's directory from a trained model, with the error a user can act on."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage

from rasa_llm.errors import ModelLoadError


@contextmanager
def read_resource(model_storage: ModelStorage, resource: Resource) -> Iterator[Path]:
    """The component's directory in the trained model, for the ``with`` block.

    Rasa's storage raises ``ValueError`` for a resource the model lacks (a model trained
    with another config); that becomes a ``ModelLoadError`` that says to retrain.
    """
    try:
        with model_storage.read_from(resource) as directory:
            yield Path(directory)
    except ValueError as e:
        raise ModelLoadError(
            resource.name,
            f"the trained model has no '{resource.name}' resource ({e})",
            "run 'rasa train' again; the model file may be from another config",
        ) from e
