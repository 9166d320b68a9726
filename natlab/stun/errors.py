"""The one exception that decoding STUN bytes can raise.

Bytes off the wire are not a user's mistake, so this is not a NatlabError:
a responder catches it and answers 400 or counts a drop. It is a ValueError
because that is what it is: the input has the wrong value. Its text says
what is wrong and at which offset, so a drop can be explained.
"""

from __future__ import annotations


class StunDecodeError(ValueError):
    """The bytes are not a well-formed STUN message; the text says why."""
