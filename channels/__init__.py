"""Rasa input/output channels that verify every request: web chat, Slack, Telegram, SMS.

Reference one from ``credentials.yml`` by import path, for example
``channels.slack.SlackInput:``. Shared parts: :mod:`channels.webhook_guard` (size,
type, encoding, clear 4xx), :mod:`channels.delivery_log` (duplicate deliveries),
:mod:`channels.channel_database` (their tables: a SQLite file or a shared database),
:mod:`channels.text_splitting` (platform limits), :mod:`channels.outbound` (retries),
:mod:`channels.attachments` (what a customer sent), :mod:`channels.conversation_ids`
(ids that name their channel), :mod:`channels.rate_limits` (what one caller may cost).
"""

# A server that loads these channels is protected by rasa-llm from the start, before
# Rasa makes its app: importing rasa_llm installs its server guards.
import rasa_llm  # noqa: E402,F401
