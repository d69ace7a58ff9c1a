"""OCPP 2.1 outbound calls: 2.0.1's (every message the CSMS sends is unchanged in 2.1, with
optional additions), validated against the 2.1 schemas before they go out. What 2.1 widens is
taken: OEM root certificates, and charging profiles with its V2X fields (``setpoint``,
``dischargeLimit``, ``operationMode`` of a schedule period) pass through SetChargingProfile."""

from __future__ import annotations

from csms.core.ocpp.outbound.v201 import GET_CERTIFICATE_TYPES, INSTALL_CERTIFICATE_TYPES, Calls201
from csms.core.ocpp.validation import V21


class Calls21(Calls201):
    version = V21
    installable_certificate_types = INSTALL_CERTIFICATE_TYPES | {"OEMRootCertificate"}  # InstallCertificateUseEnumType
    listable_certificate_types = GET_CERTIFICATE_TYPES | {"OEMRootCertificate"}  # GetCertificateIdUseEnumType
