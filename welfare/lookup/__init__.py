"""The lookup: the index guards search by name and description. It follows the registry through
the in-transaction hooks (welfare/hooks.py), registered here so that importing any part of the
lookup keeps the index in step, in the same transaction as the change."""

from welfare import hooks
from welfare.lookup import index

hooks.on_resident_changed(index.refresh_resident)
hooks.on_household_changed(index.refresh_household)
