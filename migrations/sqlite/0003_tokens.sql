-- API tokens beyond the bootstrap admin token; the same table as
-- migrations/postgres/0003_tokens.sql, in SQLite's terms (times are INTEGER
-- microseconds since the Unix epoch, by SQLite's clock).
--
-- Only a SHA-256 of the secret is stored. The secret is 256 random bits, so
-- a fast hash is enough: there is nothing to brute-force, unlike a password,
-- and a slow KDF would only add latency to every request.

create table api_tokens (
    id           text not null primary key,
    app          text references apps(name) on delete cascade,
    role         text not null check (role in ('read', 'run', 'admin')),
    secret_hash  blob not null unique check (length(secret_hash) = 32),
    description  text,
    created_at   integer not null
        default (cast(round(unixepoch('subsec') * 1000) as integer) * 1000),
    expires_at   integer,
    revoked_at   integer
) strict;

create index api_tokens_app on api_tokens (app, created_at);
