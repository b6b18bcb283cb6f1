-- Least-privilege roles of the pipeline, run by `python -m extract roles` (make roles, compose `db-init`)
-- as an administrator, in the pipeline's database, after the raw layer exists. Idempotent; safe to run
-- concurrently in several databases of one cluster (roles are cluster-wide, grants are per database).
--
--   elt_loader       the extractors: insert/select the raw tables, move their checkpoints. Owns nothing,
--                    so it cannot drop, alter or truncate anything; no access to staging or marts.
--   elt_transformer  dbt: reads raw; owns the staging and marts schemas and everything dbt builds in them.
--   elt_analyst      people and BI tools: reads marts and runs the look-up functions; nothing else.
--
-- All three are NOLOGIN groups; `extract roles` adds LOGIN members (elt_loader_user, ...) when the
-- ELT_LOADER_PASSWORD / ELT_TRANSFORMER_PASSWORD / ELT_ANALYST_PASSWORD variables are set.

do $roles$
declare
    role_name text;
begin
    foreach role_name in array array['elt_loader', 'elt_transformer', 'elt_analyst'] loop
        if not exists (select from pg_roles where rolname = role_name) then
            begin
                execute format('create role %I nologin', role_name);
            exception when duplicate_object or unique_violation then
                null;  -- created concurrently from another database of the cluster
            end;
        end if;
    end loop;
end
$roles$;

-- Database level: everyone may connect and use temp tables (the extractors stage batches in one);
-- only the transformer may create schemas (dbt's `create schema if not exists`).
do $database$
begin
    execute format(
        'grant connect, temporary on database %I to elt_loader, elt_transformer, elt_analyst', current_database()
    );
    execute format('grant create on database %I to elt_transformer', current_database());
end
$database$;

-- raw: owned by the administrator that ran the extractor's schema, written by the loader, read by dbt.
revoke all on schema raw from public;
grant usage on schema raw to elt_loader, elt_transformer;
revoke all on all tables in schema raw from public;
grant select, insert on all tables in schema raw to elt_loader;
grant update (next_offset, kafka_topic_id, consumer_group, updated_at) on raw.kafka_offsets to elt_loader;
grant update (line_count) on raw.file_loads to elt_loader;
-- The audit trail: a run's row is brought up to date as it goes and closed at its end.
grant update on raw.extract_runs to elt_loader;
grant usage on all sequences in schema raw to elt_loader;
revoke all on all functions in schema raw from public;
grant execute on all functions in schema raw to elt_loader;
grant select on all tables in schema raw to elt_transformer;

-- staging and marts belong to the transformer. Anything an earlier `dbt build` made there as another
-- role (the demo runs everything as the administrator) changes hands, so dbt can replace it.
create schema if not exists staging authorization elt_transformer;
create schema if not exists marts authorization elt_transformer;
alter schema staging owner to elt_transformer;
alter schema marts owner to elt_transformer;
revoke all on schema staging, marts from public;

do $handover$
declare
    item record;
begin
    for item in
        select
            case c.relkind
                when 'v' then 'view'
                when 'm' then 'materialized view'
                else 'table'
            end as kind,
            c.oid::regclass::text as name
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where
            n.nspname in ('staging', 'marts')
            and c.relkind in ('r', 'p', 'v', 'm')
            and c.relowner <> 'elt_transformer'::regrole
    loop
        execute format('alter %s %s owner to elt_transformer', item.kind, item.name);
    end loop;
    for item in
        select p.oid::regprocedure::text as name
        from pg_proc as p
        inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname in ('staging', 'marts') and p.proowner <> 'elt_transformer'::regrole
    loop
        execute format('alter routine %s owner to elt_transformer', item.name);
    end loop;
end
$handover$;

-- marts are readable by the analyst, now and after every rebuild: dbt replaces a table by a new one
-- (created by elt_transformer), which gets these default privileges. Functions the transformer creates
-- are not executable by PUBLIC (PostgreSQL's default); the analyst may run those in marts.
grant usage on schema marts to elt_analyst;
grant select on all tables in schema marts to elt_analyst;
revoke all on all functions in schema staging, marts from public;
grant execute on all functions in schema marts to elt_analyst;
alter default privileges for role elt_transformer revoke execute on functions from public;
alter default privileges for role elt_transformer in schema marts grant select on tables to elt_analyst;
alter default privileges for role elt_transformer in schema marts grant execute on functions to elt_analyst;
