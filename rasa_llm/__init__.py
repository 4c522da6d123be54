"""rasa-llm: transformer NLU components for Rasa 3.6.

Use them from a bot's ``config.yml``::

    pipeline:
      - name: rasa_llm.TransformerIntentClassifier
      - name: rasa_llm.TransformerSentimentAnalyzer
      - name: FallbackClassifier

and the hand-off policy from its ``policies``::

    policies:
      - name: rasa_llm.HumanHandoffPolicy

Importing this package registers them with Rasa's default recipe and, under the
``rasa`` command line (``rasa run``, ``rasa run actions``, ``rasa shell``), keeps
customers' messages out of the logs (:mod:`rasa_llm.log_redactor`) and answers a
customer whose action failed (:mod:`rasa_llm.action_failure_reply`); under ``rasa run``
and ``rasa shell`` Rasa's REST channel and HTTP API also answer a malformed request with
a 400 that says what to fix, not a 500 (:mod:`rasa_llm.http_api_guard`). The custom actions
(``action_generative_fallback``, ``action_handoff``) live in ``rasa_llm.fallback`` and
``rasa_llm.action_handoff``; a bot's ``actions`` package imports them.
"""

import os
import sys

from rasa_llm.action_failure_reply import install_action_failure_reply
from rasa_llm.http_api_guard import install_http_api_guard
from rasa_llm.human_handoff_policy import HumanHandoffPolicy
from rasa_llm.log_redactor import install_log_redaction
from rasa_llm.serving import use_serving_threads
from rasa_llm.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.transformer_sentiment_analyzer import TransformerSentimentAnalyzer

__all__ = ["HumanHandoffPolicy", "TransformerIntentClassifier", "TransformerSentimentAnalyzer"]
__version__ = "0.1.0"

# Only under Rasa's command line: a library importer (a test, a notebook, another
# server) keeps its logging and Rasa's processor as they are, and calls
# install_log_redaction(), install_action_failure_reply() or install_http_api_guard() if
# it wants them.
if os.path.basename(sys.argv[0]) == "rasa":
    install_log_redaction()
    install_action_failure_reply()
    # The commands that answer messages: one torch thread each (rasa_llm.serving), and
    # Rasa's server (not the action server's) answers malformed requests with a 400.
    if sys.argv[1:2] in (["run"], ["shell"]) and sys.argv[2:3] != ["actions"]:
        use_serving_threads()
        install_http_api_guard()
