-- As migrations/postgres/0018_app_network.sql.
alter table apps add column network_name text;
