"""OCPI 2.2.1 roaming: the CPO role (locations, sessions, CDRs, tariffs, tokens, commands) and the
eMSP role for the operator's own cards at partners' stations. See ``README.md``."""
