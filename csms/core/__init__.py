"""The OCPP core: station connections, message handling, sessions, commands and storage."""
