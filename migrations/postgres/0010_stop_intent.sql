-- Why a worker is stopping a job's container, written before it signals
-- the container: a worker that dies while the command winds down leaves
-- it for the worker that takes the container over, which then records the
-- job's real end (`timed_out`, not the exit status of the SIGTERM).
alter table jobs add column stop_reason text;
