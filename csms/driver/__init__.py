"""The driver portal at ``/driver``: drivers sign in by e-mail link or password and see their
own cards and sessions (:mod:`csms.driver.portal`)."""

from csms.driver.portal import DRIVER_COOKIE, driver_router

__all__ = ["DRIVER_COOKIE", "driver_router"]
