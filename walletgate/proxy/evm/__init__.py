"""The EVM protocol adapter (sans-I/O): JSON-RPC calls in, intents out.

Entry points: :func:`walletgate.proxy.evm.decode.decode_call`,
:func:`walletgate.proxy.evm.methods.classify` and
:func:`walletgate.proxy.evm.reads.balance_query`.
"""
