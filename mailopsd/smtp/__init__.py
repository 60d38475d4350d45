"""Mail out: a composed message and its envelope, and the transports that deliver it.

Below the dispatcher (campaign steps) and the inbox (forwarded delivery reports), which
both send through it; it knows nothing of campaigns' state.
"""
