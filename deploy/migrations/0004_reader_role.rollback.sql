-- Rollback of 0004_reader_role. The role itself stays (it belongs to the cluster and other
-- databases' grants may name it); this database no longer grants it anything.
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM ulasan_reader;
REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM ulasan_reader;
REVOKE USAGE ON SCHEMA public FROM ulasan_reader;
