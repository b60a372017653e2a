-- Who or what created each job: the token's id and description, or the
-- admin token of the configuration (`jobs status`, the console's runs).
-- Null for jobs created before this column.
alter table jobs add column created_by text;
