"""Notifications: the outbox of owner events and their delivery by signed webhooks.

``outbox`` writes events in the caller's transaction, ``signing`` signs and verifies
deliveries, ``delivery`` is the background worker of each gateway process that sends
them. The operator actions (list, retry, test) live in ``walletgate.service.webhooks``.
"""
