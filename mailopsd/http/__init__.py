"""The daemon's HTTP side: signed link tokens and API keys.

The links put into messages (one-click unsubscribe, open pixel, click redirect) carry
tokens that only this daemon can make; the credentials API is reached with keys whose
hashes are declared in the config.
"""
