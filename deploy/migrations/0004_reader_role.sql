-- depends: 0003_retrain_runs_lease
-- ulasan_reader: the read-only role the UI reads with. It cannot log in (NOLOGIN): the UI
-- connects as ulasan's own user and takes the role for its whole session (`-c role=...` at
-- connect time), so no second password exists, and every statement of that session runs
-- with SELECT only. Roles belong to the cluster: the local stack creates it (as the
-- superuser, with the application user as a member); elsewhere a user allowed to create
-- roles (compose's and the chart's POSTGRES_USER) creates it here.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ulasan_reader') THEN
        BEGIN
            CREATE ROLE ulasan_reader NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role ulasan_reader does not exist and % may not create roles',
                current_user
                USING HINT = 'as a superuser: CREATE ROLE ulasan_reader NOLOGIN; '
                    || 'GRANT ulasan_reader TO ' || current_user;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'ulasan_reader', 'MEMBER') THEN
        EXECUTE format('GRANT ulasan_reader TO %I', current_user);
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO ulasan_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO ulasan_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ulasan_reader;
