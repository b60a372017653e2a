-- An operator's Docker network an app's jobs join instead of the app's own
-- (jobs_core::hardening::validate_network_name); null: the app's own.
alter table apps add column network_name text;
