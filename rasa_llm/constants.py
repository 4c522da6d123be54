"""Names shared between rasa-llm's components."""

# Message key under which the intent classifier leaves each message's pooled sentence
# vector for the sentiment analyzer: one encoder pass serves both heads. It is not
# an output property, so it never reaches the parse result or the tracker.
SENTENCE_VECTOR = "rasa_llm_sentence_vector"

# Rasa's default for how many entries ``intent_ranking`` keeps.
DEFAULT_RANKING_LENGTH = 10

SENTIMENT_LABELS = ("negative", "neutral", "positive")
