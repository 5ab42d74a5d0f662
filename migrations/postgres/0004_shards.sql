-- Sharded settlement: each shard of a month records that it is done; the month counts as
-- settled (settled_months) when every shard of some split is done.
CREATE TABLE settled_shards (
    month       text COLLATE "C" NOT NULL,
    shard_count integer NOT NULL CHECK (shard_count >= 1),
    shard_index integer NOT NULL CHECK (shard_index >= 0 AND shard_index < shard_count),
    settled_at  timestamptz NOT NULL,
    PRIMARY KEY (month, shard_count, shard_index)
);
