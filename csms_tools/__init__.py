"""Tools that drive a CSMS from outside, shipped with the core but never imported by the server:
simulated stations (``csms simulate``, also the test kit's ``SimStation``) and the OCPP load
benchmark (``csms bench``)."""
