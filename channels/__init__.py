"""Rasa input/output channels that verify every request: web chat, Slack, Telegram, SMS.

Reference one from ``credentials.yml`` by import path, for example
``channels.slack.SlackInput:``. Shared parts: :mod:`channels.webhook_guard` (size,
type, encoding, clear 4xx), :mod:`channels.delivery_log` (duplicate deliveries),
:mod:`channels.channel_database` (their tables: a SQLite file or a shared database),
:mod:`channels.text_splitting` (platform limits), :mod:`channels.outbound` (retries),
:mod:`channels.attachments` (what a customer sent).
"""
