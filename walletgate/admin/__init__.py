"""The admin HTTP API: operators and owners manage walletgate over HTTP.

Its own aiohttp listener (loopback by default), described by the OpenAPI 3.1 document
``openapi.yaml`` beside this file, which is also what requests are validated against
(:mod:`.spec`). Handlers only check the key's scope and format: the actions are the
service layer's (:mod:`walletgate.service`), the same the ``walletgate`` command calls.
"""
