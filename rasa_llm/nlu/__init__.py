"""The NLU components a bot's ``config.yml`` names: the intent classifier and the
sentiment analyzer, with what they share (ranking, sentiment labels from NLU data).

Their model code (network, directory format, inference, training) is in
:mod:`rasa_llm.models`.
"""
