-- Sharded settlement: each shard of a month records that it is done; the month counts as
-- settled (settled_months) when every shard of some split is done.
CREATE TABLE settled_shards (
    month       TEXT NOT NULL,
    shard_count INTEGER NOT NULL CHECK (shard_count >= 1),
    shard_index INTEGER NOT NULL CHECK (shard_index >= 0 AND shard_index < shard_count),
    settled_at  INTEGER NOT NULL,
    PRIMARY KEY (month, shard_count, shard_index)
) WITHOUT ROWID;
