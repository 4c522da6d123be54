"""rasa-llm: transformer NLU components for Rasa 3.6.

Use them from a bot's ``config.yml``::

    pipeline:
      - name: rasa_llm.TransformerIntentClassifier
      - name: rasa_llm.TransformerSentimentAnalyzer
      - name: FallbackClassifier

Importing this package registers both components with Rasa's default recipe.
"""

from rasa_llm.transformer_intent_classifier import TransformerIntentClassifier
from rasa_llm.transformer_sentiment_analyzer import TransformerSentimentAnalyzer

__all__ = ["TransformerIntentClassifier", "TransformerSentimentAnalyzer"]
__version__ = "0.1.0"
