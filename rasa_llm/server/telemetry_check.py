"""TelemetryCheck: a Rasa server with rasa-llm does not send telemetry unless told to.

Rasa 3.6 sends usage telemetry and error reports to outside hosts unless
``RASA_TELEMETRY_ENABLED=false`` is set or ``rasa telemetry disable`` has written
``~/.config/rasa/global.yml`` for the user running it; a plain ``rasa run`` in a
service unit, as another user, sends them. ``make setup`` runs ``rasa telemetry
disable`` and the Makefile exports the variable; :func:`refuse_telemetry` is the check
that catches every other way of starting Rasa: a Rasa server whose telemetry is on
stops at start with the fix, before it serves anything, unless the operator opts in
with ``RASA_LLM_ALLOW_TELEMETRY=true``.
"""

from __future__ import annotations

import logging
import os

from rasa_llm.errors import RasaLLMError

__all__ = ["ALLOW_TELEMETRY_ENV", "TelemetryEnabledError", "refuse_telemetry"]

logger = logging.getLogger(__name__)

ALLOW_TELEMETRY_ENV = "RASA_LLM_ALLOW_TELEMETRY"


class TelemetryEnabledError(RasaLLMError):
    """Rasa's telemetry is on and the operator did not say that it may be."""


def refuse_telemetry(*, can_refuse_to_start: bool = True) -> None:
    """Raise :class:`TelemetryEnabledError` when Rasa's telemetry is on, unless allowed.

    ``can_refuse_to_start=False`` (the server is already starting): turn telemetry off
    for the rest of this process instead (Rasa reads the variable before each event),
    with the error logged.
    """
    from rasa import telemetry

    if not telemetry.is_telemetry_enabled():
        return
    if os.environ.get(ALLOW_TELEMETRY_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        logger.warning(
            "Rasa's telemetry is on (%s=true): Rasa sends usage data to its servers.",
            ALLOW_TELEMETRY_ENV,
        )
        return
    error = TelemetryEnabledError(
        "Rasa's telemetry is on for this user, so Rasa would send usage data and error "
        "reports to outside hosts. Fix: run `rasa telemetry disable` as the user that runs "
        "the server (make setup does it for you), or export RASA_TELEMETRY_ENABLED=false "
        f"(the Makefile does). To send them on purpose, set {ALLOW_TELEMETRY_ENV}=true."
    )
    if can_refuse_to_start:
        raise error
    os.environ[telemetry.TELEMETRY_ENABLED_ENVIRONMENT_VARIABLE] = "false"
    logger.error("%s Telemetry is turned off for this run.", error)
