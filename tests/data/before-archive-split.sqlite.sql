-- An SQLite database as habitat_http made it before the archive had its own
-- migrations (commit df029eb): sqlite3's iterdump(), after PRAGMA user_version.
-- See tests/data/SOURCES.md.
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE listener_information (
        id             TEXT    PRIMARY KEY,
        callsign       TEXT    NOT NULL,
        time_created   INTEGER NOT NULL,
        time_uploaded  INTEGER NOT NULL,
        data           TEXT    NOT NULL,
        source_message INTEGER NOT NULL UNIQUE
    );
INSERT INTO "listener_information" VALUES('ff4529184c92656d316656b93c8fadb752bbf00022482be143e2d48f89014087','M0AAA',1700000000,1700000002,'{"name":"Ann","radio":"FT-817"}',1);
CREATE TABLE listener_telemetry (
        id             TEXT    PRIMARY KEY,
        callsign       TEXT    NOT NULL,
        time_created   INTEGER NOT NULL,
        time_uploaded  INTEGER NOT NULL,
        data           TEXT    NOT NULL,
        source_message INTEGER NOT NULL UNIQUE
    );
INSERT INTO "listener_telemetry" VALUES('94fac4abccf54d2ec796fd55f87e229b90fcf30cb484154b1517334f5325647f','M0AAA',1700000001,1700000003,'{"altitude":12,"latitude":51.5,"longitude":-0.1,"time":{"hour":1,"minute":2,"second":3}}',2);
CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        callsign      TEXT    NOT NULL,
        type          TEXT    NOT NULL,
        time_created  INTEGER NOT NULL,
        time_uploaded INTEGER NOT NULL,
        ip            TEXT,
        data          TEXT    NOT NULL,
        time_received REAL    NOT NULL
    , dedup_key BLOB);
INSERT INTO "messages" VALUES(1,'M0AAA','LISTENER_INFO',1700000000,1700000002,'192.0.2.7','{"name":"Ann","radio":"FT-817"}',1700000002.5,X'04E3B84367D8B2ABAC2E0E3AA1DD3856');
INSERT INTO "messages" VALUES(2,'M0AAA','LISTENER_TELEM',1700000001,1700000003,'192.0.2.7','{"latitude":51.5,"longitude":-0.1,"altitude":12,"time":{"hour":1,"minute":2,"second":3}}',1700000003.5,X'D77BE747C0067506EB317F1BC3E6088B');
INSERT INTO "messages" VALUES(3,'M0AAA','RECEIVED_TELEM',1700000010,1700000012,'192.0.2.7','{"string":"JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz","frequency":434075000}',1700000012.5,X'7D1E72339CFD232D1279128BFD6411EC');
INSERT INTO "messages" VALUES(4,'M0BBB','RECEIVED_TELEM',1700000012,1700000014,'192.0.2.7','{"string":"JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz"}',1700000014.5,X'507F333259EF87488F70C6D18CC1BDF9');
CREATE TABLE payload_telemetry (
        id                     TEXT    PRIMARY KEY,
        raw                    TEXT    NOT NULL,
        receivers              TEXT    NOT NULL,
        estimated_time_created INTEGER NOT NULL,
        first_message          INTEGER NOT NULL
    );
INSERT INTO "payload_telemetry" VALUES('1d125e78ea563909d959075ffaff1f06caa794a75bc88126e8d1e37e2acf0644','JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz','{"M0AAA":{"frequency":434075000,"latest_listener_information":"ff4529184c92656d316656b93c8fadb752bbf00022482be143e2d48f89014087","latest_listener_telemetry":"94fac4abccf54d2ec796fd55f87e229b90fcf30cb484154b1517334f5325647f","time_created":1700000010,"time_uploaded":1700000012},"M0BBB":{"latest_listener_information":null,"latest_listener_telemetry":null,"time_created":1700000012,"time_uploaded":1700000014}}',1700000011,3);
CREATE TABLE sink_checkpoints (
        sink            TEXT    PRIMARY KEY,
        last_id         INTEGER NOT NULL,
        updated         REAL    NOT NULL,
        last_error      TEXT,
        last_error_time REAL,
        failures        INTEGER NOT NULL DEFAULT 0
    );
INSERT INTO "sink_checkpoints" VALUES('archive',4,1700000020.0,NULL,NULL,0);
CREATE INDEX payload_telemetry_first ON payload_telemetry (first_message);
CREATE INDEX listener_information_latest
        ON listener_information (callsign, time_created, source_message);
CREATE INDEX listener_telemetry_latest
        ON listener_telemetry (callsign, time_created, source_message);
CREATE UNIQUE INDEX messages_dedup_key ON messages (dedup_key);
COMMIT;
