-- A PostgreSQL database as habitat_http made it before the archive had its own
-- migrations (commit df029eb): pg_dump --inserts --no-owner --no-privileges, with
-- psql meta-commands and SET lines removed. See tests/data/SOURCES.md.
CREATE TABLE public.habitat_schema (
    version integer NOT NULL
);
CREATE TABLE public.listener_information (
    id text NOT NULL,
    callsign text NOT NULL,
    time_created bigint NOT NULL,
    time_uploaded bigint NOT NULL,
    data jsonb NOT NULL,
    source_message bigint NOT NULL
);
CREATE TABLE public.listener_telemetry (
    id text NOT NULL,
    callsign text NOT NULL,
    time_created bigint NOT NULL,
    time_uploaded bigint NOT NULL,
    data jsonb NOT NULL,
    source_message bigint NOT NULL
);
CREATE TABLE public.messages (
    id bigint NOT NULL,
    callsign text NOT NULL,
    type text NOT NULL,
    time_created bigint NOT NULL,
    time_uploaded bigint NOT NULL,
    ip text,
    data jsonb NOT NULL,
    time_received double precision NOT NULL,
    dedup_key bytea,
    tx xid8 DEFAULT pg_current_xact_id() NOT NULL
);
CREATE SEQUENCE public.messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE public.messages_id_seq OWNED BY public.messages.id;
CREATE TABLE public.payload_telemetry (
    id text NOT NULL,
    raw text NOT NULL,
    receivers jsonb NOT NULL,
    estimated_time_created bigint NOT NULL,
    first_message bigint NOT NULL
);
CREATE TABLE public.sink_checkpoints (
    sink text NOT NULL,
    last_tx bigint NOT NULL,
    last_id bigint NOT NULL,
    updated double precision NOT NULL,
    last_error text,
    last_error_time double precision,
    failures integer DEFAULT 0 NOT NULL
);
ALTER TABLE ONLY public.messages ALTER COLUMN id SET DEFAULT nextval('public.messages_id_seq'::regclass);
INSERT INTO public.habitat_schema VALUES (1);
INSERT INTO public.listener_information VALUES ('ff4529184c92656d316656b93c8fadb752bbf00022482be143e2d48f89014087', 'M0AAA', 1700000000, 1700000002, '{"name": "Ann", "radio": "FT-817"}', 1);
INSERT INTO public.listener_telemetry VALUES ('94fac4abccf54d2ec796fd55f87e229b90fcf30cb484154b1517334f5325647f', 'M0AAA', 1700000001, 1700000003, '{"time": {"hour": 1, "minute": 2, "second": 3}, "altitude": 12, "latitude": 51.5, "longitude": -0.1}', 2);
INSERT INTO public.messages VALUES (1, 'M0AAA', 'LISTENER_INFO', 1700000000, 1700000002, '192.0.2.7', '{"name": "Ann", "radio": "FT-817"}', 1700000002.5, '\x04e3b84367d8b2abac2e0e3aa1dd3856', '2615');
INSERT INTO public.messages VALUES (4, 'M0BBB', 'RECEIVED_TELEM', 1700000012, 1700000014, '192.0.2.7', '{"string": "JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz"}', 1700000014.5, '\x507f333259ef87488f70c6d18cc1bdf9', '2615');
INSERT INTO public.messages VALUES (3, 'M0AAA', 'RECEIVED_TELEM', 1700000010, 1700000012, '192.0.2.7', '{"string": "JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz", "frequency": 434075000}', 1700000012.5, '\x7d1e72339cfd232d1279128bfd6411ec', '2615');
INSERT INTO public.messages VALUES (2, 'M0AAA', 'LISTENER_TELEM', 1700000001, 1700000003, '192.0.2.7', '{"time": {"hour": 1, "minute": 2, "second": 3}, "altitude": 12, "latitude": 51.5, "longitude": -0.1}', 1700000003.5, '\xd77be747c0067506eb317f1bc3e6088b', '2615');
INSERT INTO public.payload_telemetry VALUES ('1d125e78ea563909d959075ffaff1f06caa794a75bc88126e8d1e37e2acf0644', 'JCRBTE1BLTIsNTUsMTE6MzU6NTQsNTEuNzAwNzA5LDQuNjYyOTk1LDIxLDYsMzAsMjkzNCwwOCxNRSpGRDIz', '{"M0AAA": {"frequency": 434075000, "time_created": 1700000010, "time_uploaded": 1700000012, "latest_listener_telemetry": "94fac4abccf54d2ec796fd55f87e229b90fcf30cb484154b1517334f5325647f", "latest_listener_information": "ff4529184c92656d316656b93c8fadb752bbf00022482be143e2d48f89014087"}, "M0BBB": {"time_created": 1700000012, "time_uploaded": 1700000014, "latest_listener_telemetry": null, "latest_listener_information": null}}', 1700000011, 3);
INSERT INTO public.sink_checkpoints VALUES ('archive', 2615, 4, 1700000020, NULL, NULL, 0);
SELECT pg_catalog.setval('public.messages_id_seq', 4, true);
ALTER TABLE ONLY public.listener_information
    ADD CONSTRAINT listener_information_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.listener_information
    ADD CONSTRAINT listener_information_source_message_key UNIQUE (source_message);
ALTER TABLE ONLY public.listener_telemetry
    ADD CONSTRAINT listener_telemetry_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.listener_telemetry
    ADD CONSTRAINT listener_telemetry_source_message_key UNIQUE (source_message);
ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_dedup_key_key UNIQUE (dedup_key);
ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.payload_telemetry
    ADD CONSTRAINT payload_telemetry_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.sink_checkpoints
    ADD CONSTRAINT sink_checkpoints_pkey PRIMARY KEY (sink);
CREATE INDEX listener_information_latest ON public.listener_information USING btree (callsign, time_created, source_message);
CREATE INDEX listener_telemetry_latest ON public.listener_telemetry USING btree (callsign, time_created, source_message);
CREATE INDEX messages_position ON public.messages USING btree (tx, id);
CREATE INDEX payload_telemetry_first ON public.payload_telemetry USING btree (first_message);
