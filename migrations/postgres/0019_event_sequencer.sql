-- Events are numbered without a serialization point at commit. Until now every transaction that
-- wrote events took a per-organization advisory lock and held it through its commit, so that
-- MAX(seq) + 1 was handed out in commit order; an organization's writes then committed one at a
-- time (about 900 creates/s on a 2-core machine). Now a transaction appends its events here, each
-- with a position from a sequence, taken after every row lock the transaction holds, so a change
-- that depends on another is positioned after it. A publisher (one at a time, under an advisory
-- lock; store/access.rs `publish_events`) moves them into `events` in position order with the
-- organization's next numbers, and only across positions it knows are settled: a position not
-- yet visible belongs to a transaction still running, or to one that rolled back, which it tells
-- apart by the transaction ids still running (`gap_*` below). Readers of `events` publish first.
-- Nothing already stored changes: `events` keeps its rows and numbers; the queue starts empty.
-- Replicas of the previous release keep appending to `events` directly under the organization's
-- advisory lock, which the publisher also takes for the organizations it numbers.
CREATE SEQUENCE event_position;

CREATE TABLE pending_events (
    position     BIGINT PRIMARY KEY,
    org_id       TEXT COLLATE "C" NOT NULL,
    id           TEXT NOT NULL,
    type         TEXT NOT NULL,
    org_user_id  TEXT COLLATE "C",
    data         TEXT NOT NULL,
    at           BIGINT NOT NULL
);

-- Where publishing stands: the last position settled, and the first gap seen past it, if any,
-- with the first transaction id not yet assigned when it was seen (every transaction that could
-- fill the gap had an id below it) and the first position seen after the gap.
CREATE TABLE event_publisher (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_position BIGINT NOT NULL,
    gap_at      BIGINT,
    gap_end     BIGINT,
    gap_xmax    BIGINT
);
INSERT INTO event_publisher (id, last_position) VALUES (1, 0);
