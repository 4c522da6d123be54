"""rasa-llm: transformer NLU components for Rasa 3.6.

Use them from a bot's ``config.yml``::

    pipeline:
      - name: rasa_llm.TransformerIntentClassifier
      - name: rasa_llm.TransformerSentimentAnalyzer
      - name: FallbackClassifier

and the hand-off policy from its ``policies``::

    policies:
      - name: rasa_llm.HumanHandoffPolicy

Importing this package registers them with Rasa's default recipe. The custom actions
(``action_generative_fallback``, ``action_handoff``) live in ``rasa_llm.fallback`` and
``rasa_llm.action_handoff``; a bot's ``actions`` package imports them.
"""

from rasa_llm.human_handoff_policy import HumanHandoffPolicy
from rasa_llm.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.transformer_sentiment_analyzer import TransformerSentimentAnalyzer

__all__ = ["HumanHandoffPolicy", "TransformerIntentClassifier", "TransformerSentimentAnalyzer"]
__version__ = "0.1.0"
