-- Draining workers, and the version each worker runs.
--
-- `version` is the worker's own version, written with every heartbeat, so
-- that an operator sees which hosts a rolling upgrade has reached.
-- `draining_since` is set by an admin (`jobs workers drain ID`) and cleared
-- only by an admin (`--undo`): a draining worker claims no job, queued or
-- interactive, while the jobs it already runs go on to their end. Heartbeats
-- leave it alone, and the row of a draining worker is kept when the worker
-- shuts down, so that a drain survives a restart (docs/operations.md).
alter table workers
    add column version text,
    add column draining_since timestamptz;
