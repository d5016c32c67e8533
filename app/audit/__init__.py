"""Tamper-evident audit log: hash-chained entries, an RFC 6962 Merkle tree, signed tree heads and receipts."""
