-- What a worker is about to do to a job's container, written before it
-- does it, so that whoever picks the job up after the worker died acts on
-- the truth rather than on a guess:
-- - `start_requested_at`: the worker asked the engine to start the
--   container. From then on the command may have run, so the job is never
--   queued again (it ends `lost` if its worker dies), because a command
--   with side effects must not silently run twice.
-- - `stop_reason`: why the worker is stopping the container (`timed_out`).
--   The worker that takes the container over records the job's real end
--   (`timed_out`, not the exit status of the SIGTERM).
-- A new claim clears both.
alter table jobs
    add column start_requested_at timestamptz,
    add column stop_reason text;
