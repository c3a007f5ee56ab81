//! Adapters of the domain ports: Redis (system of record) and in-memory (development mode).
