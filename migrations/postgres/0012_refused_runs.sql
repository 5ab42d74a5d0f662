-- A command refused before it did anything, for asking what cannot be done (exit 3: an
-- operator's `settle --month` of a month that has not ended, or in another billing zone) is
-- recorded as `refused`: not a failure of the job, it pages nobody (`billrun_last_run_failed`
-- looks past it).
ALTER TABLE runs DROP CONSTRAINT runs_outcome_check;
ALTER TABLE runs ADD CONSTRAINT runs_outcome_check
    CHECK (outcome IN ('running', 'ok', 'nothing-to-do', 'busy', 'stopped', 'failed', 'refused'));
