"""Adapters: each backend hidden behind one small protocol (registry, object store, chunk store)."""
