"""The edge cases of ``analyses/audit_edges.py``, one module per area.

Each module defines ``CASES``: a list of :class:`~audit.common.Case`. A case is a function that
either returns ``None`` (the number is right, or the bad input was refused with a named error it checked
itself), returns a string describing the wrong number that came back with nothing saying so, or raises.
"""
