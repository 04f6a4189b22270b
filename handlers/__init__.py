"""The pet store's handlers: one function per operationId of `specs/petstore.yaml`.

Grouped by resource (`pets`, `users`, `items`, `files`, `events`, `misc`); they share the
in-memory store of `_store`.
"""
