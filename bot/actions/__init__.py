"""The bot's custom actions, run by `rasa run actions` in bot/ (make run starts it)."""
