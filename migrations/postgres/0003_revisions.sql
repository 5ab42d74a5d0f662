-- Corrections: a settled bill is never edited. Late usage leads to a new revision of the bill
-- (kind 'adjustment'), which debits or credits only the difference, through a ledger entry of
-- kind 'adjustment'.

ALTER TABLE bills ADD COLUMN kind text NOT NULL DEFAULT 'original' CHECK (kind IN ('original', 'adjustment'));
-- What this revision moved: the whole total for an original, the difference for an adjustment
-- (negative: a credit).
ALTER TABLE bills ADD COLUMN debited_fen bigint NOT NULL DEFAULT 0;
UPDATE bills SET debited_fen = total_fen;

ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ('opening', 'debit', 'adjustment', 'recharge'));
