"""What rasa-llm adds to Rasa's servers: log redaction, the HTTP API's token and body
checks, request limits, the action server's token, typed ``/intents`` read as text, the
scripted reply for a failed action, the telemetry check, the tracker and lock stores and
the metrics event broker. :mod:`~rasa_llm.server.server_guards` switches the
protections on in every server.
"""
