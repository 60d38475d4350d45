"""Classifying what arrives in a sending mailbox: bounces, complaints, auto-replies, replies.

Pure: bytes in, a ``Classification`` out, and never an exception, whatever the bytes.

Delivery reports are read from RFC 3464 ``message/delivery-status`` parts; from the same
fields when an MTA writes them as text; from Amazon SES notifications; and otherwise from
the text that MTAs write. Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Yahoo and the
others word their reports differently, but each names the failed address next to the
server's reply; ``flufl.bounce`` is the last resort for the addresses. Complaints are RFC
5965 (ARF) reports. Each failed recipient gets a reason (``userunknown``, ``mailboxfull``,
``spamdetected``...) and the class that follows from it, read by
:mod:`mailopsd.diagnosis` from its status code and the server's words:

- ``hard``: the address does not exist, its domain does not, or the account is closed;
- ``soft``: passing or recipient-side trouble: mailbox full, message too big, network,
  expiry in the queue, the receiving system's own errors, greylisting;
- ``block``: the sender was refused (spam, blocklists, reputation, policy, SPF, DKIM,
  DMARC, reverse DNS, authentication, relaying, content), which speaks of the sending
  mailbox, not of the address.

Messages that are not reports are auto-replies (RFC 3834 and the older vendor headers,
out-of-office subjects), unsubscribe requests, replies or ``other``.

The package, by concept: ``reader`` (the tolerant MIME reader), ``phrases`` (the words
of robots and people recognised, as data), ``reports`` (DSN, ARF and SES), ``freetext``
(recipients in a report's text), ``decision`` (what the message is), ``model`` (what is
returned), ``limits`` (the bounds on what is read).
"""

from __future__ import annotations

from mailopsd.inbox.classify.decision import classify
from mailopsd.inbox.classify.model import KINDS, Classification, FailedRecipient

__all__ = ["KINDS", "Classification", "FailedRecipient", "classify"]
