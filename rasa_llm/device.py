"""Choose the torch device a component runs on: ``cuda`` when present, else the CPU."""

from __future__ import annotations

import torch

from rasa_llm.errors import InvalidComponentConfigError

AUTO = "auto"


def resolve_device(component: str, requested: str) -> torch.device:
    """Turn the ``device`` config value into a :class:`torch.device`.

    ``auto`` picks ``cuda`` when a GPU is usable and the CPU otherwise. An explicit
    ``cuda`` on a machine without a GPU is an error rather than a silent CPU run, so
    an operator who paid for a GPU notices that it is not used.
    """
    if requested == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise InvalidComponentConfigError(
            component,
            "device",
            f"is not a device: {requested!r}",
            "use 'auto', 'cpu', 'cuda' or 'cuda:N'.",
        ) from e
    if device.type not in ("cpu", "cuda"):
        raise InvalidComponentConfigError(
            component,
            "device",
            f"names an unsupported device type {device.type!r}",
            "use 'auto', 'cpu', 'cuda' or 'cuda:N'.",
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidComponentConfigError(
            component,
            "device",
            "asks for 'cuda' but no CUDA GPU is usable here",
            "set device to 'auto' or 'cpu', or install a CUDA driver.",
        )
    return device
