"""The values of the ``cache`` command's options that :mod:`~joblite.store.maintenance` also takes.

The sort orders of ``ls``, how many entries ``info`` shows and how long the
loader of ``verify`` may spend on one entry are the command line's choices
and defaults and the maintenance functions' own.  They live here, in a
module that imports nothing, so that building the parser of ``python -m
joblite`` does not import the store (and, through it, the persistence code).
"""

__all__ = ["ENTRY_TIMEOUT", "SORTS", "TOP"]

#: How :func:`~joblite.store.maintenance.list_entries` sorts.
SORTS = ("name", "size", "age")
#: Entries shown as the largest and the oldest by :func:`~joblite.store.maintenance.store_info`.
TOP = 5
#: Seconds the loader may spend on one entry before it is killed and the entry reported.
ENTRY_TIMEOUT = 600.0
