"""What the benchmarks and the tests both start or send (so ``bench`` imports no ``tests``).

- :mod:`bench.support.rasa_process`: Rasa's CLI, server and action server as a bot
  builder runs them, the run's endpoints and credentials, free ports and auth headers;
- :mod:`bench.support.postgres_server`, :mod:`bench.support.redis_server`: throw-away
  PostgreSQL and Redis servers on loopback;
- :mod:`bench.support.fake_platform`: a loopback stand-in for Slack's, Telegram's and
  Twilio's web APIs that fails every call it was not told to expect;
- :mod:`bench.support.slack_payloads`, :mod:`bench.support.telegram_payloads`: the
  platforms' webhook requests, signed as they sign them.
- :mod:`bench.support.offline_env`: the environment Rasa and training subprocesses
  run in (no telemetry, Hugging Face offline).

A server that does not start calls ``pytest.fail`` with its log, as a test wants it;
in a benchmark that stops the run with the same message.
"""
