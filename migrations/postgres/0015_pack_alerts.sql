-- Pack alerts: an account's free pack of an API 80% and 100% used, its last prepaid pack of an
-- API under 20% left and used up. Each is an event of kind 'pack_alert', recorded once per
-- pack and threshold (the unique key, which leads with the account as every key does), and
-- announced as a `pack.alert` webhook like the other events. The pack's size and what was
-- left of it when the alert was recorded are kept with it.
ALTER TABLE events DROP CONSTRAINT events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check
    CHECK (kind IN ('arrears_notice', 'suspended', 'restored', 'pack_alert'));
ALTER TABLE events ADD COLUMN pack_id text COLLATE "C", ADD COLUMN api text COLLATE "C",
    ADD COLUMN threshold text, ADD COLUMN pack_calls bigint, ADD COLUMN pack_left bigint;
ALTER TABLE events ADD CONSTRAINT events_pack_alert_key UNIQUE (account_id, pack_id, threshold);
ALTER TABLE events ADD CONSTRAINT events_pack_alert_fields
    CHECK ((kind = 'pack_alert') = (pack_id IS NOT NULL AND api IS NOT NULL AND threshold IS NOT NULL
                                    AND pack_calls IS NOT NULL AND pack_left IS NOT NULL));
