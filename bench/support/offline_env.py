"""The environment a Rasa or training subprocess runs in: offline, quiet, no telemetry."""

from __future__ import annotations

import os
from typing import Dict

# Rasa sends no telemetry, Hugging Face reads only its cache, TensorFlow logs warnings only.
OFFLINE = {
    "RASA_TELEMETRY_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def offline_env(**extra: str) -> Dict[str, str]:
    """This process's environment with :data:`OFFLINE` and then ``extra`` on top."""
    return {**os.environ, **OFFLINE, **extra}
