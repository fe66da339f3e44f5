"""Built-in sandbox companies: local HTTP emulators of QuickBooks Online and Xero.

They are as strict as the real services (paging and CDC limits, token rotation, throttling,
SyncToken conflicts) so that a connector which works here works there. ``arsync demo`` and the
tests talk to them over real HTTP through the real SDKs.
"""
