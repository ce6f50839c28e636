"""Recorded exchanges: the record, the bounded store."""
