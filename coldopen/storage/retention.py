"""How long the change feed keeps what it shipped: replicas and snapshots further behind rebuild."""

KEEP_CHANGES_S = 24 * 3600
# A snapshot older than this may cover changes the feed no longer keeps (less an hour for clock skew).
MAX_AGE_S = KEEP_CHANGES_S - 3600
