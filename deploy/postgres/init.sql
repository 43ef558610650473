-- Stafett: one database and one login role per service.
--
-- Run once by the postgres image on its first start (an empty data volume), as the
-- superuser, through psql. The passwords come from the container's environment
-- (STAFETT_<SERVICE>_DB_PASSWORD), never from this file. To run it by hand against another
-- server, export the same variables and run: psql -v ON_ERROR_STOP=1 -f init.sql
--
-- A service owns its database and can reach no other: the services never read each other's
-- data (they share events, not tables). The read models are disposable: each service
-- creates its tables with its own migrations at start and can rebuild them from the stream.

\set ON_ERROR_STOP on

\getenv case_password STAFETT_CASE_DB_PASSWORD
\getenv log_password STAFETT_LOG_DB_PASSWORD
\getenv consent_password STAFETT_CONSENT_DB_PASSWORD
\getenv notify_password STAFETT_NOTIFY_DB_PASSWORD

CREATE ROLE stafett_case LOGIN PASSWORD :'case_password';
CREATE ROLE stafett_log LOGIN PASSWORD :'log_password';
CREATE ROLE stafett_consent LOGIN PASSWORD :'consent_password';
CREATE ROLE stafett_notify LOGIN PASSWORD :'notify_password';

CREATE DATABASE stafett_case OWNER stafett_case ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE stafett_log OWNER stafett_log ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE stafett_consent OWNER stafett_consent ENCODING 'UTF8' TEMPLATE template0;
CREATE DATABASE stafett_notify OWNER stafett_notify ENCODING 'UTF8' TEMPLATE template0;

-- By default every role may connect to every database; only the owner may here.
REVOKE ALL ON DATABASE stafett_case FROM PUBLIC;
REVOKE ALL ON DATABASE stafett_log FROM PUBLIC;
REVOKE ALL ON DATABASE stafett_consent FROM PUBLIC;
REVOKE ALL ON DATABASE stafett_notify FROM PUBLIC;
