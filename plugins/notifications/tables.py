"""The notifications plugin's tables: subscriptions, the delivery log, drivers' links."""

from __future__ import annotations

from piccolo.columns import JSON, BigInt, Boolean, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from csms.plugin_api import Driver, Organization


class Subscription(Table, tablename="notifications_subscription"):
    """Where notifications of some events go: a webhook URL, an e-mail address or a browser's
    push endpoint (``webpush``: a driver's phone or computer, ``secret`` holds the browser's
    ``auth`` secret, ``p256dh`` its public key).

    With ``driver`` set it is a driver's own subscription: only that driver's session events.
    With ``organization`` set it hears of that organization's stations (and those of the
    organizations below it) only; without, it is the installation's and hears of every station.
    """

    name = Varchar(length=200, default="")
    channel = Varchar(length=16)  # webhook|email|webpush
    target = Varchar(length=512)  # URL, e-mail address or push endpoint
    secret = Varchar(length=128, default="")  # HMAC key of a webhook, auth secret of a push subscription
    events = JSON(default=["*"])  # patterns: "session.*", "alert.opened", "*"
    station_id = Varchar(length=64, default="")  # only this station
    site = Integer(null=True, default=None)  # only this site's stations
    driver = ForeignKey(references=Driver, null=True, on_delete=OnDelete.cascade, index=True)
    enabled = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    organization = ForeignKey(references=Organization, null=True, on_delete=OnDelete.cascade, index=True)
    p256dh = Varchar(length=128, default="")  # a push subscription's public key (base64url)
    device = Varchar(length=200, default="")  # a push subscription's browser, as the driver sees it
    language = Varchar(length=8, default="")  # the language a push subscription's texts are in


class Delivery(Table, tablename="notifications_delivery"):
    """One notification to one subscription, with its attempts (the delivery log)."""

    subscription = ForeignKey(references=Subscription, null=True, on_delete=OnDelete.set_null, index=True)
    channel = Varchar(length=16)
    target = Varchar(length=512)
    event = Varchar(length=64, index=True)
    notification_id = Varchar(length=36, index=True)
    station_id = Varchar(length=64, default="")
    subject = Varchar(length=255, default="")
    payload = Text()  # the JSON body, the same bytes on every attempt
    status = Varchar(length=16, default="pending", index=True)  # pending|sending|delivered|failed
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow(), index=True)
    last_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    response_status = Integer(null=True, default=None)
    response_body = Varchar(length=500, default="")
    last_error = Varchar(length=500, default="")
    replay_of = BigInt(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)


class DriverLink(Table, tablename="notifications_driver_link"):
    """A driver's private link to manage their own subscriptions (drivers have no login)."""

    driver = ForeignKey(references=Driver, on_delete=OnDelete.cascade, index=True)
    token = Varchar(length=64, unique=True, index=True)
    created_at = Timestamptz(default=TimestamptzNow())


class VapidKey(Table, tablename="notifications_vapid_key"):
    """The installation's VAPID key pair, made once (unless a key is configured): the public key is
    what browsers subscribe with, the private key signs every push request and is never shown."""

    name = Varchar(length=32, unique=True)  # "default": one pair per installation
    private_key = Text()  # PEM
    public_key = Varchar(length=100)  # base64url of the uncompressed P-256 point
    created_at = Timestamptz(default=TimestamptzNow())


NOTIFICATION_TABLES: list[type[Table]] = [Subscription, Delivery, DriverLink, VapidKey]
