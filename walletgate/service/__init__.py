"""The service layer: every operator action has one home here.

Each action module (``policies``, ``tokens``, ``freezes``, ``transactions``,
``admin_keys``, ``spend``, ``directory``, ``approvals``, ``webhooks``, ...) holds
one family of actions as functions of plain arguments, open ``Stores`` and the acting
``actor``, returning plain data and raising ``UserError`` subclasses for what a user can
fix. Two doors call them and only format: the ``walletgate`` command (the ``run_*``
handlers in the ``*_commands`` modules) and the admin HTTP API (:mod:`walletgate.admin`),
so an action behaves, and is audited, the same whichever door it came through.
"""
