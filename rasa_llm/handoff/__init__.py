"""Hand-off to a person: the rule (:mod:`~rasa_llm.handoff.handoff_rules`), the dialogue
policy that applies it, and ``action_handoff``, which tells the agent desk.
"""
