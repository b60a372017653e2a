-- Secret config vars: the names of an app's env vars whose values the API
-- shows masked and the worker masks in job output. The values stay in
-- `env`, so the worker gets them; this is a JSON array of names, sorted.
-- See docs/security.md, "Secrets".

alter table apps
    add column secret_env jsonb not null default '[]'::jsonb;
