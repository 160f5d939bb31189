"""The PBX's own call records (CDRs): the sources that read them, the ledger that merges
them into the firm's call history, the reconciler that keeps it current, and recordings.

Framework-free: nothing here imports Reflex or FastAPI.
"""
