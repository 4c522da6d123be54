"""The generative fallback: retrieval, prompt, generation backends, guardrails, action.

``action_generative_fallback`` answers what the bot has no story for from the bot's
knowledge base (``bot/knowledge/``), through a local or remote language model, and
sends a reply only when every guardrail passes; otherwise the best passage or a
scripted reply that offers a person.
"""
