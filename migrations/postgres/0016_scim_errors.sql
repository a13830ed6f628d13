-- The last SCIM requests of each directory that failed (method, path, status, scimType and the
-- error's detail), so that the console shows an IT admin why their IdP's pushes fail. Never a
-- token or a request body. Bounded by the code that writes it: the newest 10 per directory, an
-- older one deleted as a new one comes. Nothing already stored changes: the table starts empty.
CREATE TABLE scim_errors (
    id            TEXT COLLATE "C" PRIMARY KEY,
    directory_id  TEXT COLLATE "C" NOT NULL REFERENCES directories(id) ON DELETE CASCADE,
    at            BIGINT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    status        INTEGER NOT NULL,
    scim_type     TEXT,
    detail        TEXT
);
CREATE INDEX scim_errors_directory ON scim_errors(directory_id, id);
