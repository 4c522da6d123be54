"""Register, inspect or remove the bot's Telegram webhook, from ``credentials.yml``.

::

    python -m channels.telegram set-webhook --credentials bot/credentials.yml
    python -m channels.telegram webhook-info --credentials bot/credentials.yml
    python -m channels.telegram delete-webhook --credentials bot/credentials.yml

``set-webhook`` checks the token (getMe, and that ``verify`` is the bot's username),
then calls setWebhook with ``webhook_url``, ``secret_token`` and the update types the
channel handles, so Telegram starts sending updates to the server with the secret in
every request. Run it once per deployment, or whenever the URL or the secret changes;
the server itself never calls setWebhook, so it starts without reaching Telegram.
Credentials are read as ``rasa run`` reads them, ``${ENV_VAR}`` included.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

from telegram import Bot
from telegram.error import TelegramError

from channels.telegram_config import CLASS_PATH, TelegramConfig, TelegramConfigError

# Telegram delivers only to HTTPS, on these ports.
_PORTS = (443, 80, 88, 8443)


class CommandError(Exception):
    """A problem the person running the command can fix; the message says how."""


class TelegramRefused(CommandError):
    """The Bot API answered with an error or not at all (the token is never in the message)."""


def allowed_updates(config: TelegramConfig) -> List[str]:
    """The update types the channel answers; Telegram then sends no others."""
    kinds = ["message", "callback_query"]
    if config.answer_edited_messages:
        kinds.insert(1, "edited_message")
    return kinds


def load_config(path: str, channel: str, base_url: Optional[str]) -> TelegramConfig:
    """The channel's settings from the ``channel`` section of the credentials file at ``path``."""
    with warnings.catch_warnings():  # Rasa's imports warn about their own dependencies
        warnings.simplefilter("ignore", DeprecationWarning)
        from rasa.shared.utils.io import read_config_file

        try:
            credentials: Dict[str, Any] = read_config_file(path) or {}
        except Exception as error:  # noqa: BLE001 - Rasa raises several kinds for one mistake
            raise CommandError(f"cannot read {path}: {error}") from error
    if channel not in credentials:
        found = ", ".join(map(str, credentials)) or "none"
        raise CommandError(
            f"{path} has no `{channel}:` section (channels found: {found}); add it or pass "
            "--channel with the key you use"
        )
    section = dict(credentials[channel] or {})
    if base_url:
        section["base_url"] = base_url
    try:
        return TelegramConfig.from_credentials(section)
    except TelegramConfigError as error:
        raise CommandError(str(error)) from error


def _check_url(url: Optional[str]) -> str:
    from urllib.parse import urlsplit

    if not url:
        raise CommandError(
            "credentials.yml, channel `telegram`, key `webhook_url`: missing. Add the public "
            "HTTPS URL of the server's /webhooks/telegram/webhook."
        )
    parts = urlsplit(url)
    if parts.scheme != "https" or (parts.port or 443) not in _PORTS:
        raise CommandError(
            f"webhook_url {url!r}: Telegram only calls https:// URLs on ports "
            f"{', '.join(map(str, _PORTS))}; put the server behind a TLS proxy"
        )
    if not parts.path.rstrip("/").endswith("/webhooks/telegram/webhook"):
        print(
            f"warning: webhook_url {url!r} does not end in /webhooks/telegram/webhook, the "
            "channel's route; make sure your proxy forwards it there",
            file=sys.stderr,
        )
    return url


async def run(args: argparse.Namespace) -> str:
    """Carry out the command the arguments name; what to print."""
    config = load_config(args.credentials, args.channel, args.base_url)
    url = _check_url(config.webhook_url) if args.command == "set-webhook" else None
    try:
        return await _call_telegram(args, config, url)
    except TelegramError as error:
        said = str(error).replace(config.access_token, "<access_token>")
        raise TelegramRefused(f"the Bot API call failed: {said}") from error


async def _call_telegram(
    args: argparse.Namespace, config: TelegramConfig, url: Optional[str]
) -> str:
    async with Bot(config.access_token, base_url=config.base_url) as bot:  # calls getMe
        username = bot.username
        if config.verify and config.verify.lower() != username.lower():
            raise CommandError(
                f"credentials.yml, channel `telegram`, key `verify`: {config.verify!r}, but "
                f"the token belongs to @{username}; fix one of them"
            )
        if args.command == "set-webhook":
            assert url is not None  # checked before the first call
            kinds = allowed_updates(config)
            await bot.set_webhook(
                url=url,
                secret_token=config.secret_token,
                allowed_updates=kinds,
                drop_pending_updates=args.drop_pending_updates,
                max_connections=args.max_connections,
            )
            return f"@{username}: webhook set to {url} for {', '.join(kinds)}"
        if args.command == "delete-webhook":
            await bot.delete_webhook(drop_pending_updates=args.drop_pending_updates)
            return f"@{username}: webhook deleted"
        info = await bot.get_webhook_info()
        lines = [
            f"@{username}: webhook {info.url or '(none)'}",
            f"pending updates: {info.pending_update_count}",
            f"allowed updates: {', '.join(info.allowed_updates or ()) or '(all but some)'}",
        ]
        if info.last_error_message:
            lines.append(f"last error: {info.last_error_message} at {info.last_error_date}")
        return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line's parser: set-webhook, delete-webhook and webhook-info."""
    main_parser = argparse.ArgumentParser(
        prog="python -m channels.telegram", description=__doc__.split("\n\n")[0]
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("set-webhook", "register webhook_url with secret_token"),
        ("webhook-info", "show the registered webhook and its last error"),
        ("delete-webhook", "stop webhook delivery"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--credentials", default="credentials.yml", help="credentials.yml")
        command.add_argument(
            "--channel", default=CLASS_PATH, help=f"the channel's key (default {CLASS_PATH})"
        )
        command.add_argument("--base-url", help="Bot API URL, for a local Bot API server")
        if name != "webhook-info":
            command.add_argument(
                "--drop-pending-updates",
                action="store_true",
                help="discard the updates Telegram is holding for the bot",
            )
        if name == "set-webhook":
            command.add_argument(
                "--max-connections",
                type=int,
                default=40,
                help="parallel connections Telegram may open (1-100, default 40)",
            )
    return main_parser


def main(*, argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; the exit status."""
    args = parser().parse_args(argv)
    try:
        print(asyncio.run(run(args)))
    except TelegramRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
