"""The service layer: every operator action has one home here.

Each module holds the work of one family of actions (tokens, freezes, the audit log,
settling spends by hand) on open stores, plus the ``run_*`` handlers the ``walletgate``
command dispatches to. A future admin HTTP API calls the same functions, so an action
behaves (and is audited) the same whichever door it came through.
"""
