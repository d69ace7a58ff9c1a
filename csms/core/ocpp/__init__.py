"""OCPP adapters: one ``ChargePoint`` subclass per protocol version, translating payloads to core calls."""
