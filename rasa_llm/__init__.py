"""rasa-llm: transformer NLU components for Rasa 3.6.

Use them from a bot's ``config.yml``::

    pipeline:
      - name: rasa_llm.TransformerIntentClassifier
      - name: rasa_llm.TransformerSentimentAnalyzer
      - name: FallbackClassifier

and the hand-off policy from its ``policies``::

    policies:
      - name: rasa_llm.HumanHandoffPolicy

Importing this package registers them with Rasa's default recipe and protects every
Rasa server and action server of the process, however it was started
(:mod:`rasa_llm.server_guards`): customers' messages stay out of the logs, a customer
whose action failed is answered, the HTTP API needs its token, customers' ``/...``
messages are read as text, the action server answers only the Rasa server, and Rasa's
telemetry stays off. The custom actions (``action_generative_fallback``,
``action_handoff``) live in ``rasa_llm.fallback`` and ``rasa_llm.action_handoff``; a
bot's ``actions`` package imports them.
"""

from rasa_llm.human_handoff_policy import HumanHandoffPolicy
from rasa_llm.server_guards import install_server_guards
from rasa_llm.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.transformer_sentiment_analyzer import TransformerSentimentAnalyzer

__all__ = ["HumanHandoffPolicy", "TransformerIntentClassifier", "TransformerSentimentAnalyzer"]
__version__ = "0.1.0"

install_server_guards()
