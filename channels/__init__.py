"""Rasa input/output channels that verify every request: web chat, Slack, Telegram, SMS.

Reference one from ``credentials.yml`` by import path, for example
``channels.slack.SlackInput:``. Shared parts: :mod:`channels.settings` (typed readers
of credentials.yml, the one :class:`~channels.settings.ChannelConfigError`, the shared
defaults), :mod:`channels.verification` (each platform's proof, with a clock where time
matters), :mod:`channels.webhook_guard` (size, type, encoding, clear 4xx),
:mod:`channels.delivery_log` (duplicate deliveries), :mod:`channels.channel_database`
(their tables: a SQLite file or a shared database), :mod:`channels.text_splitting`
(platform limits), :mod:`channels.outbound` (retries), :mod:`channels.attachments`
(what a customer sent), :mod:`channels.conversation_ids` (ids that name their channel),
:mod:`channels.rate_limits` (what one caller may cost).

Each input channel module imports ``rasa_llm``, whose server guards
(:mod:`rasa_llm.server.server_guards`) then protect the Rasa server from the moment Rasa makes
its app; the command-line tools here (``channels.desk_agents``,
``channels.conversation_id_migration``) do not need them and start without them.
"""
