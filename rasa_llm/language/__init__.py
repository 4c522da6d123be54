"""The bot's languages: which one a message is in, and the conversation's in a slot.

:class:`MessageLanguageDetector` (an NLU component) sets each message's ``language``;
:mod:`rasa_llm.language.language_slot` keeps the conversation's in the ``language``
slot, on which responses' variations are conditioned.
"""

from rasa_llm.language.detection import message_language
from rasa_llm.language.language_slot import install_language_slot
from rasa_llm.language.message_language_detector import MessageLanguageDetector

__all__ = ["MessageLanguageDetector", "install_language_slot", "message_language"]
