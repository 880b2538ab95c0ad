"""Cross-cutting infrastructure shared by every app: typed env helpers, the embedded
Redis, the process launcher, broadcasting from workers, rate limits.

It holds no models of its own and imports no ML libraries.
"""
