-- Per-app container hardening. Every default keeps what apps had before:
-- no capability added back, the image's user, a writable root, the default
-- network. See docs/security.md.

alter table apps
    -- Capabilities added back after all are dropped: a JSON array of names
    -- such as "NET_BIND_SERVICE", canonical and sorted.
    add column cap_add        jsonb not null default '[]'::jsonb,
    -- `UID[:GID]` or `NAME[:GROUP]`; null runs as the image's user.
    -- (`user` is reserved in SQL.)
    add column run_as_user    text,
    add column read_only_root boolean not null default false,
    add column network_none   boolean not null default false;
