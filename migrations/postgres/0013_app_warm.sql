-- The warm pool: how many containers each worker keeps created and started
-- for this app, at the app's default size, waiting for a run. 0, what every
-- app had before this column, turns the pool off. The API caps it at 16
-- (`jobs_core::size::MAX_WARM`); the database only refuses a negative count.
alter table apps
    add column warm integer not null default 0 check (warm >= 0);
