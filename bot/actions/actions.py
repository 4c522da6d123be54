"""Custom actions of the customer-service bot.

The two below come from rasa-llm; importing them here is what registers them with the
action server. Add the bot's own actions (rasa_sdk ``Action`` subclasses) to this
package and list their names under ``actions:`` in domain.yml.
"""

from rasa_llm.fallback.action_generative_fallback import ActionGenerativeFallback
from rasa_llm.handoff.action_handoff import ActionHandoff

__all__ = ["ActionGenerativeFallback", "ActionHandoff"]
