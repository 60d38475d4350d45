"""What comes back: each mailbox polled, its messages classified and recorded.

What a bounce or a complaint does to a lead and to its credential is ``mailopsd.health``'s.
"""
