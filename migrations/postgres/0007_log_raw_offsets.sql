-- The raw byte offset, in its stream, just past what a chunk holds: the
-- bytes the container wrote, before secret masking changed their length.
-- A restarted worker resumes reading the job's output log from there.
-- Null for chunks that are not a resume point (and for older rows).
alter table job_logs add column raw_end bigint;
