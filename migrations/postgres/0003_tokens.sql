-- API tokens beyond the bootstrap admin token.
--
-- Only a SHA-256 of the secret is stored. The secret is 256 random bits, so
-- a fast hash is enough: there is nothing to brute-force, unlike a password,
-- and a slow KDF would only add latency to every request. A database dump
-- thus holds no usable token.
--
-- `id` is public (listed, used to revoke); it is not derived from the secret.
-- A token with an app sees only that app; deleting the app deletes them.

create table api_tokens (
    id           text primary key,
    app          text references apps(name) on delete cascade,
    role         text not null check (role in ('read', 'run', 'admin')),
    secret_hash  bytea not null unique check (length(secret_hash) = 32),
    description  text,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);

create index api_tokens_app on api_tokens (app, created_at);
